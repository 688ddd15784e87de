"""LLM providers: OpenAI-compatible endpoints from configuration plus the offline one."""
