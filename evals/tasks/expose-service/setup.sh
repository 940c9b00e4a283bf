source "$TASK_DIR/../../lib.sh"
deployment shop ghcr.io/example/shop:3.1.0 2
wait_available shop 2
