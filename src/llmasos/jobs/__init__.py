"""Jobs: work the OS runs in the background (OpenAI-style batches so far)."""
