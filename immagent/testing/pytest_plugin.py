"""pytest plugin (entry point ``immagent``): fixtures for apps that test code built on immagent."""
