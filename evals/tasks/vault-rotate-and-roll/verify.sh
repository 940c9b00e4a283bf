source "$TASK_DIR/../../lib.sh"
ver=$(bao kv metadata get -format=json "secret/$VAULT_PATH/db" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["current_version"])')
[ "$ver" -ge 2 ] || fail "secret/$VAULT_PATH/db was not rotated (version $ver)"
new=$(bao kv get -field=password "secret/$VAULT_PATH/db")
old=$(bao kv get -version=1 -field=password "secret/$VAULT_PATH/db")
[ "$new" != "$old" ] || fail "the new password equals the old one"
[ "$(jp secret db-creds '{.data.password}' | base64 -d)" = "$new" ] || fail "Secret db-creds does not hold the new password"
[ -n "$(jp deploy api '{.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}')" ] || fail "deployment api was not restarted"
wait_available api 1 15 || fail "api is not available after the restart"
echo "rotated (v$ver), db-creds updated, api restarted"
