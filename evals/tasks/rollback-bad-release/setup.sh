source "$TASK_DIR/../../lib.sh"
deployment web nginx:1.27.2 1
wait_available web 1
deployment web nginx:1.27.3-rc0 1
for _ in $(seq 40); do
  [ "$(jp deploy web '{.metadata.annotations.deployment\.kubernetes\.io/revision}')" = 2 ] && { wait_pod_reason app=web ImagePullBackOff; exit 0; }
  sleep 0.25
done
fail "the second rollout did not start"
