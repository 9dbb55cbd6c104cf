"""kb for AI agents and LLM frameworks: a LangChain retriever (kb/agents/langchain.py, the ``kb[langchain]`` extra)."""
