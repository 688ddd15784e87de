"""The generation lane: LLM calls against OpenAI-compatible providers, batches, answers."""
