"""diagnose: only current failures count, --since, source IP against the allowed ranges, plain
words for an unrecognised error, and exit 0 only when it names a cause."""

from __future__ import annotations

import pytest
from cliharness import run

pytestmark = pytest.mark.e2e


def test_a_failure_before_the_last_successful_sign_in_is_not_current() -> None:
    org = "sandbox:c8-inactive-user"
    assert run("verify", "--org", org).code == 4  # leaves a failed Login History row
    assert run("apply", "--org", org, "--yes").code == 0
    assert run("verify", "--org", org).code == 0  # and now a successful one
    result = run("diagnose", "--org", org)
    assert result.code == 2
    assert "no current failed logins" in result.out
    assert "1 older failed login(s) left out" in result.out
    assert "C8" not in result.out
    assert "No cause named." in result.out


def test_since_leaves_out_older_failures() -> None:
    org = "sandbox:c8-inactive-user"
    assert run("verify", "--org", org).code == 4
    assert run("diagnose", "--org", org).code == 0
    result = run("diagnose", "--org", org, "--since", "2999-01-01T00:00")
    assert "no current failed logins" in result.out
    assert "older failed login(s) left out" in result.out


def test_the_failed_attempts_source_ip_is_compared_with_the_profiles_ranges() -> None:
    org = "sandbox:c11-ip-restricted"
    assert run("verify", "--org", org).code == 4
    result = run("diagnose", "--org", org)
    assert result.code == 0, result.out
    assert "from 203.0.113.20)" in result.out
    assert "source IP 203.0.113.20 is outside profile Workato Integration's login IP ranges " \
           "(192.0.2.0-192.0.2.255)" in result.out
    assert "  C11: " in result.out


def test_an_unrecognised_error_text_is_said_plainly_and_exits_2() -> None:
    result = run("diagnose", "--org", "sandbox:healthy", "--error", "the flux capacitor broke")
    assert result.code == 2
    assert "remediate does not recognise this error text: 'the flux capacitor broke'" \
        in result.out
    assert "No cause named." in result.out


def test_a_recognised_error_text_names_its_cause_and_exits_0() -> None:
    result = run("diagnose", "--org", "sandbox:c1-client-credentials-off", "--error",
                 "request not supported on this domain")
    assert result.code == 0
    assert "  C10: " in result.out


def test_since_that_is_not_a_time_is_bad_input() -> None:
    result = run("diagnose", "--org", "sandbox:healthy", "--since", "yesterday")
    assert result.code == 64
    assert "--since 'yesterday': expected an ISO date/time" in result.err
