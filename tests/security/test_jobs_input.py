"""Hostile bodies on the job routes: refused with a JSON error, and the daemon lives on."""
import pytest
import requests

from warren_harness import assert_error


@pytest.mark.parametrize("body", [b"[1]", b"{", b"\"shell\"", b"{\"a\":1,\"a\":2}"])
def test_terminal_with_a_malformed_body_is_refused_once(server, sandbox, body):
        # The body of POST /terminals is optional; one that is there but is not a JSON object
        # is refused (400), and the handler stops there (it went on with an empty body,
        # using the request after its answer had freed it).
        r = server.post(f"/api/v1/sandbox/{sandbox}/terminals", data=body,
                        headers={"Content-Type": "application/json"})
        assert_error(r, 400, "invalid_json")
        assert requests.get(server.url + "/health", timeout=10).status_code == 200
        lst = server.get(f"/api/v1/sandbox/{sandbox}/processes").json()["processes"]
        assert lst == [], f"a refused request started a terminal: {lst}"
