"""Insights: the query log (kb/insights/log.py: what is kept, grouped, written off the request path) and the report
over it (kb/insights/report.py: top questions, unanswered ones, clicks, citations, per day). The rows live with the
store's record (kb/stores/querylog.py)."""
