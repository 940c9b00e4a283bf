source "$TASK_DIR/../../lib.sh"
for _ in $(seq 20); do
  ips=$(jp endpoints web '{.subsets[*].addresses[*].ip}' 2>/dev/null || true)
  [ "$(echo $ips | wc -w)" -ge 2 ] && { echo "endpoints: $ips"; exit 0; }
  sleep 0.25
done
fail "service web has endpoints [${ips:-}], expected the 2 pods of deployment web"
