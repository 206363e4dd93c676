"""``sdlib whoami``: check the Civitai token against the source and say who it is."""

from __future__ import annotations

import click

from sdlib.cli._common import cli_context, echo_err, emit_json, handle_errors, json_option
from sdlib.formatting import terminal_safe


@click.command("whoami")
@json_option
@handle_errors
def whoami_cmd(as_json: bool) -> None:
    """Check the Civitai API token and say whose it is and what it can reach.

    Civitai treats a wrong key as no key at all, except when a download needs a login;
    this asks Civitai (GET /api/v1/me) instead. With no token: "no token: anonymous"
    (exit 0, after checking the server answers); a token Civitai refuses: "token
    rejected" (exit 6). Set one with `sdlib config set-token` or CIVITAI_TOKEN.

    \b
    Examples:
      sdlib whoami
      CIVITAI_TOKEN=... sdlib whoami --json
    """
    from sdlib.services.account import whoami

    with cli_context() as ctx:
        who = whoami(ctx)
    if as_json:
        emit_json(who.to_dict())
    else:
        token = f" (token {who.token} from {who.token_source})" if who.token else ""
        click.echo(terminal_safe(who.headline() + token, newlines=False))
        click.echo("can reach: " + "; ".join(who.can_reach))
    if who.state == "rejected":
        echo_err(
            f"sdlib: error: token rejected by {who.base_url}: check the key "
            "(civitai.com/user/account, API Keys) and run `sdlib config set-token`"
        )
        raise SystemExit(6)
