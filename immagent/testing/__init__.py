"""Testing helpers for apps built on immagent: an offline scripted model and a pytest plugin.

    from immagent.testing import ScriptedModel
    model = ScriptedModel().install()          # answers as "immagent/scripted"
    model.reply("Hello!", input_tokens=3, output_tokens=2)
    agent = await store.create_agent(name="a", system_prompt="p", model=model.model)

The model goes through LiteLLM's custom-provider path, so nothing inside immagent special-cases it.
"""

from immagent.testing._scripted import PROVIDER, ScriptedModel, ScriptedReply, ScriptedRequest, echo

__all__ = ["PROVIDER", "ScriptedModel", "ScriptedReply", "ScriptedRequest", "echo"]
