# Sourced by scripts/test.sh and scripts/bench.sh: the Python venv with the test peers (moto,
# awscli, botocore), created or refreshed when tests/requirements.txt changes, exported as
# EKS_AGENT_TEST_VENV. $1 names the caller in the message.
VENV="${EKS_AGENT_TEST_VENV:-$PWD/.venv}"
stamp="$VENV/.requirements.sha256"
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "$1: creating the test venv in $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
    echo "$want" > "$stamp"
fi
export EKS_AGENT_TEST_VENV="$VENV"
