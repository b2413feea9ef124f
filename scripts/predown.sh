#!/bin/sh
# azd predown hook: before `azd down` deletes the app's resource group, remove what
# scripts/postdeploy.sh made outside it: the app's Event Grid subscription, and the ACS resource's
# system topic when postdeploy made it and no other subscription uses it. azd never deletes
# them (they are not in the app's group), and left behind they would deliver to a deleted app.
# It also bumps ACS_TRIAGE_VAULT_GENERATION: the deleted Key Vault keeps its name for 90 days
# (purge protection), so the next `azd up` makes a vault of another name.
set -eu
hook=predown
# shellcheck source=scripts/hooklib.sh
. "$(dirname "$0")/hooklib.sh"

need_tools
load_env
generation=${ACS_TRIAGE_VAULT_GENERATION:-1}
case "$generation" in *[!0-9]* | '') fail "ACS_TRIAGE_VAULT_GENERATION must be a number, not '$generation'" ;; esac

if [ -n "${ACS_TRIAGE_TOPIC_NAME:-}" ]; then
  need AZURE_FUNCTION_APP_NAME ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID ACS_TRIAGE_TOPIC_GROUP
  need_login
  subscription=$(subscription_name)
  set -- --subscription "$ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID" --resource-group "$ACS_TRIAGE_TOPIC_GROUP"
  if az eventgrid system-topic event-subscription show "$@" --system-topic-name "$ACS_TRIAGE_TOPIC_NAME" \
    --name "$subscription" --output none 2>/dev/null; then
    az eventgrid system-topic event-subscription delete "$@" --system-topic-name "$ACS_TRIAGE_TOPIC_NAME" \
      --name "$subscription" --yes --output none
    echo "predown: removed the Event Grid subscription $subscription"
  fi
  if [ "${ACS_TRIAGE_TOPIC_MADE:-false}" = true ]; then
    others=$(az eventgrid system-topic event-subscription list "$@" --system-topic-name "$ACS_TRIAGE_TOPIC_NAME" \
      --query "length(@)" --output tsv)
    if [ "$others" = 0 ]; then
      az eventgrid system-topic delete "$@" --name "$ACS_TRIAGE_TOPIC_NAME" --yes --output none
      echo "predown: removed the system topic $ACS_TRIAGE_TOPIC_NAME (postdeploy made it)"
    else
      echo "predown: kept the system topic $ACS_TRIAGE_TOPIC_NAME: $others other subscription(s) use it"
    fi
  fi
  azd env set ACS_TRIAGE_TOPIC_NAME ""
  azd env set ACS_TRIAGE_TOPIC_MADE false
else
  echo "predown: no Event Grid subscription was made in this environment; nothing to remove outside it"
fi
azd env set ACS_TRIAGE_VAULT_GENERATION "$((generation + 1))"
