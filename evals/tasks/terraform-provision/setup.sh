source "$TASK_DIR/../../lib.sh"
mkdir -p "$EVAL_WORKDIR/infra"
cat > "$EVAL_WORKDIR/infra/main.tf" <<'TF'
variable "env" {
  type = string
}

resource "terraform_data" "network" {
  input = "platform-${var.env}-net"
}

output "network" {
  value = terraform_data.network.output
}
TF
