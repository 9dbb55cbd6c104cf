"""kb for AI agents and LLM frameworks: an MCP server (kb/agents/mcp.py, the official SDK; web/mcp.py serves it)
and a LangChain retriever (kb/agents/langchain.py, the ``kb[langchain]`` extra). docs/agents.md describes both."""
