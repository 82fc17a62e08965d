# Sourced by the scripts here: the reference scripts' MODEL and GATE_PRIOR arguments as our flags.
#   model_args MODEL GATE_PRIOR [DIM]  sets ARGS (named configs and core flags) or exits 2 with one line.
# DIM, where given, sizes the deterministic state and hidden layers (SVSG: its latent and hidden layers).

model_args() {
  local model=$1 prior=$2 dim=${3:-}
  if ! awk -v p="$prior" 'BEGIN { exit !(p + 0 == p && p > 0 && p < 1) }'; then
    echo "error: GATE_PRIOR '$prior' must be a number in (0, 1), e.g. 0.4" >&2
    exit 2
  fi
  local gate=(--gate.prior "$prior" --gate.scale 0.1) rssm=() svsg=()
  if [ -n "$dim" ]; then
    rssm=(--rssm.deter "$dim" --rssm.hidden "$dim")
    svsg=(--svsg.stoch "$dim" --svsg.hidden "$dim")
  fi
  case "$model" in
    DreamerV1) ARGS=(--core rssm "${rssm[@]}" --rssm.discrete 0) ;;
    DreamerV2) ARGS=(--core rssm "${rssm[@]}" --rssm.discrete 32) ;;
    VSG) ARGS=(--configs vsg "${rssm[@]}" --rssm.discrete 32 "${gate[@]}") ;;
    SVSG) ARGS=(--configs svsg "${svsg[@]}" "${gate[@]}") ;;
    *) echo "error: MODEL '$model' is not supported; choose DreamerV1, DreamerV2, VSG or SVSG" >&2; exit 2 ;;
  esac
}
