"""The natural-language shell's commands: what a sentence may become (commands.py). The server
translates (GET /v1/shell/translate); `llmasos shell` and the dashboard's command bar ask it."""
