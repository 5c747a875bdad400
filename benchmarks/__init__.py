"""immagent's benchmarks: ``python -m benchmarks`` (or ``nox -s bench``) prints one table per figure and
writes them as JSON. Timing figures are ratios measured in the same run (this machine is shared and
noisy), reported as medians over repeated rounds; the model is the offline ScriptedModel, so it costs
nothing but LiteLLM's own overhead. ``--quick`` is the smoke run the test suite uses.
"""
