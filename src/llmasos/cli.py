"""The `llmasos` command line."""

from __future__ import annotations

import sys

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
    prompt: str = typer.Argument(..., help="The text to continue."),
    max_tokens: int = typer.Option(128, "--max-tokens", "-n", help="Most tokens to generate."),
    temperature: float = typer.Option(0.8, help="0 for greedy decoding."),
    seed: int | None = typer.Option(None, help="Fix the sampling seed for reproducible output."),
    stop: list[str] = typer.Option([], help="Stop before this text (repeatable)."),
    model: str | None = typer.Option(None, help="Model name or GGUF path (default model if unset)."),
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
                stop=stop or None,
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
