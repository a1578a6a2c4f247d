"""Speech: audio in (Whisper base through faster-whisper, a model of the repository) and out
(espeak-ng from the distribution), behind OpenAI's /v1/audio routes and `llmasos run --voice`."""
