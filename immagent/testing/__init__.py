"""Testing helpers for apps built on immagent: an offline scripted model and a pytest plugin."""
