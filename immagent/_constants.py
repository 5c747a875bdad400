"""Constants: model names (plain strings: any LiteLLM model name works too) and the default tenant."""

from __future__ import annotations


class Model:
    """Common LiteLLM model names. Any string LiteLLM understands is accepted; these save typos."""

    GPT_4O = "gpt-4o"
    GPT_4O_MINI = "gpt-4o-mini"
    GPT_4_1 = "gpt-4.1"
    GPT_4_1_MINI = "gpt-4.1-mini"
    O3_MINI = "o3-mini"
    CLAUDE_SONNET_4 = "anthropic/claude-sonnet-4-20250514"
    CLAUDE_3_5_HAIKU = "anthropic/claude-3-5-haiku-20241022"
    GEMINI_2_FLASH = "gemini/gemini-2.0-flash"
    #: The offline scripted model from ``immagent.testing`` (no network, no key).
    SCRIPTED = "immagent/scripted"


#: The tenant of every row written by a store nobody scoped (and of rows written before tenants existed).
DEFAULT_TENANT = "default"
