source "$TASK_DIR/../../lib.sh"
deployment web nginx:1.27.2-alpine-typo 1
wait_pod_reason app=web ImagePullBackOff
