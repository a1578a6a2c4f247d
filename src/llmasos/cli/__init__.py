"""The `llmasos` command line: serve the OS, and talk to it. One module per command group:

    serve       cli/serve.py
    run, chat, ps, kill, top      cli/processes.py
    models ...  cli/models.py
    agents ...  cli/agents.py
    jobs ...    cli/jobs.py
    cluster ... cli/cluster.py (and serve --cluster)
    shell       cli/shell.py (a sentence in, one command out: nlshell/commands.py)
    bench       cli/bench.py (workloads in llmasos.benchmark)

Every command has --help.
"""

from __future__ import annotations

import typer

from llmasos.cli import agents, bench, cluster, fs, jobs, keys, models, processes, serve, shell

app = typer.Typer(
    help="LLMasOS: an operating system for LLM work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(serve.serve)
for command in (processes.run, processes.chat, processes.ps, processes.kill, processes.top):
    app.command()(command)
app.command()(shell.shell)
app.command()(bench.bench)
app.add_typer(models.models_app, name="models")
app.add_typer(agents.agents_app, name="agents")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(fs.fs_app, name="fs")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(keys.audit_app, name="audit")
app.add_typer(cluster.cluster_app, name="cluster")


def main() -> None:
    app()
