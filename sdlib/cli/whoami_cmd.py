"""``sdlib whoami``: check the Civitai token against the source and say who it is."""

from __future__ import annotations

import click

from sdlib.cli._common import cli_context, echo_err, emit_json, handle_errors, json_option


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
        host = who.base_url
        if who.state == "signed-in" and who.account is not None:
            name = who.account.username or f"user {who.account.id}"
            tier = f", {who.account.tier} tier" if who.account.tier else ""
            click.echo(f"{name} on {host}{tier} (token {who.token} from {who.token_source})")
        elif who.state == "anonymous":
            click.echo(f"no token: anonymous on {host}")
        else:
            click.echo(f"token rejected by {host}: anonymous (token {who.token} from "
                       f"{who.token_source})")  # fmt: skip
        click.echo("can reach: " + "; ".join(who.can_reach))
    if who.state == "rejected":
        echo_err(
            f"sdlib: error: token rejected by {who.base_url}: check the key "
            "(civitai.com/user/account, API Keys) and run `sdlib config set-token`"
        )
        raise SystemExit(6)
