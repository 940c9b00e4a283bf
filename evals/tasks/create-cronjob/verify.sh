source "$TASK_DIR/../../lib.sh"
kubectl get cronjob backup -n "$NAMESPACE" >/dev/null 2>&1 || fail "no CronJob backup"
[ "$(jp cronjob backup '{.spec.schedule}')" = "0 2 * * *" ] || fail "schedule is '$(jp cronjob backup '{.spec.schedule}')'"
[ "$(jp cronjob backup '{.spec.successfulJobsHistoryLimit}')" = 3 ] || fail "successfulJobsHistoryLimit is not 3"
c='{.spec.jobTemplate.spec.template.spec.containers[0]'
[ "$(jp cronjob backup "$c.image}")" = busybox:1.36.1 ] || fail "image is not busybox:1.36.1"
jp cronjob backup "$c.command}" | grep -q "echo backup done" || fail "command does not echo 'backup done'"
[ -n "$(jp cronjob backup "$c.resources.limits.memory}")" ] || fail "no memory limit"
