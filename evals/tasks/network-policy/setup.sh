source "$TASK_DIR/../../lib.sh"
deployment db postgres:16.4 1
deployment frontend nginx:1.27.2 1
