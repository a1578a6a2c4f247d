"""`llmasos bench`: workloads over any OpenAI-compatible server, their figures, JSON and plots.

loadgen      streamed requests and their timings
prompts      seeded prompts (no shared prefix; agents sharing one)
session      one server: URL, model, key; requests and errors
workloads    throughput, serve, agents, priority, swap
figures      summaries and ratios
runner       a run over one or two servers
report       the JSON header shared with bench/ scripts
plots        the PNG
local_server a `llmasos serve` started for a run
"""
