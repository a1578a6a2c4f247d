"""Agents as processes: a Python function (or a declarative spec run by the built-in tool-using
loop) that runs in its own thread, with a pid from the kernel's pid space, a priority, limits,
accounting and a trace, and that reaches the model, tools and other agents only through the
syscalls of its context (context.py)."""
