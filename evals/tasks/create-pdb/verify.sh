source "$TASK_DIR/../../lib.sh"
kubectl get pdb web -n "$NAMESPACE" >/dev/null 2>&1 || fail "no PodDisruptionBudget web"
[ "$(jp pdb web '{.spec.minAvailable}')" = 2 ] || fail "minAvailable is '$(jp pdb web '{.spec.minAvailable}')', not 2"
[ "$(jp pdb web '{.spec.selector.matchLabels.app}')" = web ] || fail "the PDB does not select app=web"
for _ in $(seq 20); do
  [ "$(jp pdb web '{.status.currentHealthy}')" = 3 ] && exit 0
  sleep 0.25
done
fail "the disruption controller sees $(jp pdb web '{.status.currentHealthy}') healthy pods, not 3"
