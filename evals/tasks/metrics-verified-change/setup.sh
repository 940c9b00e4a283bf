source "$TASK_DIR/../../lib.sh"
deployment web nginx:1.27.2 1
wait_available web 1
