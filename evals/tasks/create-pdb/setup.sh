source "$TASK_DIR/../../lib.sh"
deployment web nginx:1.27.2 3
wait_available web 3
