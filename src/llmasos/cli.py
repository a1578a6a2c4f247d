"""The `llmasos` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llmasos.errors import LLMasOSError

app = typer.Typer(
    help="LLMasOS: an operating system for LLM work.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _commands() -> None:
    """LLMasOS: an operating system for LLM work."""


@app.command()
def run(
    prompt: Annotated[str, typer.Argument(help="The text to continue.")],
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 for greedy decoding.")] = 0.8,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible sampling.")] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop before this text.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or GGUF path.")] = None,
) -> None:
    """Generate a continuation of PROMPT and stream it to the terminal."""
    from llmasos.client import Client

    try:
        with Client(model=model) as client:
            pieces = client.generate_text(
                prompt,
                stream=True,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
                stop=stop,
            )
            sys.stdout.write(prompt)
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
    except LLMasOSError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from error


def main() -> None:
    app()
