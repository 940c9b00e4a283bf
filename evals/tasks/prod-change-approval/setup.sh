source "$TASK_DIR/../../lib.sh"
deployment checkout ghcr.io/example/checkout:5.2.0 2
wait_available checkout 2
