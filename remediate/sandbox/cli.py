"""`remediate sandbox ...`: the built-in sandbox org from the command line."""

from __future__ import annotations

import typer

sandbox_app = typer.Typer(help="The built-in sandbox org: a wire-level Salesforce emulator.",
                          no_args_is_help=True, rich_markup_mode=None)


#: BSD sysexits codes used by ``serve``: a bad argument, and a port that cannot be bound.
EXIT_USAGE = 64
EXIT_UNAVAILABLE = 69


@sandbox_app.command("serve")
def serve_command(
    scenario_name: str = typer.Option(..., "--scenario", help="Scenario name or YAML path."),
    port: int = typer.Option(0, min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free one."),
    latency_ms: int = typer.Option(0, "--latency-ms", min=0,
                                   help="Delay added to every request, in milliseconds."),
    fault: list[str] = typer.Option(
        [], "--fault", metavar="SPEC",
        help="Inject a fault, e.g. http_503:api=rest,calls=1+3 or "
             "drop_connection:path=/services/data/.*/query,after=true. Repeatable."),
    page_size: int | None = typer.Option(None, "--page-size", min=1,
                                         help="Rows per query page (default 2000)."),
    child_page_size: int | None = typer.Option(
        None, "--child-page-size", min=1,
        help="Children per child sub-query result before nextRecordsUrl (default 200)."),
    state_dir: str | None = typer.Option(None, "--state-dir",
                                         help="Directory for the CA and server certificate "
                                              "(default: a temporary one, removed on exit)."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Log each request to stderr, and on exit how many "
                                      "requests came over how many TLS connections."),
) -> None:
    """Serve the sandbox org over HTTPS on 127.0.0.1 until interrupted.

    The first line on stdout is a JSON object with instance_url, access_token (an admin
    session), ca_bundle (the CA certificate to verify against), scenario, org_id and my_domain.
    """
    import json
    import logging
    import signal
    import sys
    from pathlib import Path

    from remediate.sandbox import scenario as scenarios
    from remediate.sandbox.app import Sandbox
    from remediate.sandbox.server import (
        FaultSpecError,
        SandboxServer,
        parse_fault_spec,
        startup_line,
    )

    try:
        faults = [parse_fault_spec(spec) for spec in fault]
    except FaultSpecError as exc:
        typer.echo(f"error: --fault: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        sandbox = Sandbox([scenarios.build_org(scenarios.load(scenario_name))])
    except scenarios.ScenarioError as exc:
        typer.echo(f"error: --scenario: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    sandbox.latency_s = latency_ms / 1000
    if page_size is not None:
        sandbox.page_size = page_size
    if child_page_size is not None:
        sandbox.child_page_size = child_page_size
    for kind, match in faults:
        sandbox.inject(kind, **match)  # type: ignore[arg-type]
    if verbose:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(message)s")
        logging.getLogger("remediate.sandbox.server").setLevel(logging.DEBUG)

    try:
        server = SandboxServer(sandbox, port, Path(state_dir) if state_dir else None)
    except OSError as exc:
        typer.echo(f"error: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        try:
            line = startup_line(sandbox, server, scenario_name)
        except LookupError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        typer.echo(json.dumps(line))
        sys.stdout.flush()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        counts = server.counts
        if verbose:
            typer.echo(f"served {counts['requests']} requests over {counts['connections']} TLS "
                       "connections", err=True)
        server.close()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
