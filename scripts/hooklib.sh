# shellcheck shell=sh
# Shared by the azd hooks (scripts/postdeploy.sh, scripts/predown.sh); sourced, not run.
# They reach Azure with the Azure CLI (az), in the subscription azd deploys to, and read what
# infra/main.bicep output from the azd environment. No secret is ever printed.

# The event types acs-triage reads; ACS_TRIAGE_EVENT_TYPES (comma-separated) picks among them.
ALLOWED_EVENT_TYPES="Microsoft.Communication.SMSDeliveryReportReceived Microsoft.Communication.CallEnded Microsoft.Communication.EmailDeliveryReportReceived Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated Microsoft.Communication.RouterJobClassificationFailed Microsoft.Communication.RouterJobSchedulingFailed"
DEFAULT_EVENT_TYPES=Microsoft.Communication.SMSDeliveryReportReceived

fail() {
  echo "${hook:-hook}: $*" >&2
  exit 1
}

need_tools() {
  command -v azd >/dev/null 2>&1 || fail "azd is not on PATH (this script runs as an azd hook)"
  command -v az >/dev/null 2>&1 \
    || fail "the Azure CLI (az) is not installed: the hooks manage the Event Grid subscription with it (https://aka.ms/installazurecli)"
}

# The azd environment (KEY="value" lines, quoted by azd) as shell variables.
load_env() {
  values=$(azd env get-values) || fail "'azd env get-values' failed: select an environment with 'azd env select'"
  eval "$values"
}

need() {
  for name in "$@"; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "$name is not in the azd environment; run 'azd provision' first"
  done
}

# az must be logged in where azd deploys: `azd auth login` does not log az in, and az's own
# default subscription may be another one.
need_login() {
  need AZURE_SUBSCRIPTION_ID
  az account show --subscription "$AZURE_SUBSCRIPTION_ID" --output none 2>/dev/null \
    || fail "az is not logged in to subscription $AZURE_SUBSCRIPTION_ID (azd's): run 'az login' ('azd auth login' does not log az in)"
}

lower() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }

# The subscription's event types, space-separated; each must be one acs-triage reads.
event_types() {
  types=$(printf '%s' "${ACS_TRIAGE_EVENT_TYPES:-$DEFAULT_EVENT_TYPES}" | tr ',' ' ')
  [ -n "$(printf '%s' "$types" | tr -d ' ')" ] || fail "ACS_TRIAGE_EVENT_TYPES is empty; unset it for $DEFAULT_EVENT_TYPES"
  for type in $types; do
    case " $ALLOWED_EVENT_TYPES " in
      *" $type "*) ;;
      *) fail "ACS_TRIAGE_EVENT_TYPES: $type is not an event type acs-triage reads; choose among: $ALLOWED_EVENT_TYPES" ;;
    esac
  done
  printf '%s\n' "$types" | tr -s ' '
}

# This app's subscription; the app name's token keeps two environments on one ACS resource apart.
subscription_name() { printf 'acs-triage-%s\n' "${AZURE_FUNCTION_APP_NAME##*-}"; }
