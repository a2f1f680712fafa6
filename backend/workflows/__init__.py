"""The workflow engine: order events start runs of stored workflows whose steps load orders, send messages and wait.

Definition format (JSON, or TOML with the same structure; validated on save, errors name the field):

    {
      "name": "Delivered: thank you",            required
      "active": true,                            default true; inactive = no new runs (runs in progress go on)
      "start": {"event": "orderDELIVERED",       the event type that starts a run
                "conditions": {"all": [          optional; "all" (AND) or "any" (OR), nestable
                  {"param": "EmailAddress", "op": "is_set"},
                  {"param": "totalCost", "op": "greater_than", "value": 100}]}},
      "unique": {"mode": "every"},               every | once_per_key | once_per_days (+ "days": N), per event key
      "skipIfRunning": false,                    true: no new run while one is in progress for the contact
      "stop": {"event": "orderCANCELLED",        a type, a list of types, or a prefix ending in * ("order*")
               "match": "key",                   key | contact | key_or_contact
               "before": {"hours": 1}},          optional: an ending event this long before the start counts too
              (or {"orderPlaced": true}: any non-cart order event of the contact; or a list of such rules)
      "steps": [                                 run in order unless "next" (or "yes"/"no") says otherwise;
        {"id": "order", "type": "get_order",      "next": null ends the run
         "by": "eventKey"},                      or "by": "externalOrderId", "externalOrderId": "${param}"
        {"id": "thanks", "type": "send_message",
         "channel": "auto",                      auto (email when SMTP is configured, else store) | store | email | webhook
         "to": "${EmailAddress}",                the default
         "subject": "Order ${externalOrderId}",
         "body": "{% for item in items %}{{ item.name }}\n{% endfor %}",
         "url": "https://...", "secret_env": "HOOK_SECRET"},        webhook only: POST JSON, HMAC-SHA256 signed
        {"id": "wait", "type": "timer", "days": 14},                minutes / hours / days, or "until_param": "name"
        {"id": "big", "type": "condition", "any": [...], "yes": "thanks", "no": null}
      ]
    }

Templates: `${name}` (or `$!{name}`) is an event param, else an order field (after get_order), dotted for nested
values (`${additionalInfo.orderNumber}`); missing renders empty. Start conditions read the event's params and the
order's fields (as stored when the runner reads the event); condition steps read the same names as templates. Jinja2 (sandboxed) sees the same names plus
`order`, `items`, `params` and `key`. Stop rules are applied when their event arrives, at start, and after every timer.
`once_per_key` / `once_per_days` count earlier runs of the same workflow with the same event key. A PUT replaces the
whole definition (the API's read-only id, version, createdAt, updatedAt may be sent back); runs in progress continue
with the new steps. Runs: in_progress, completed, stopped, error. Messages: stored (store channel), sending (recorded,
send under way), sent, failed, unknown (the worker died mid-send; never repeated automatically). A message failed or
unknown fails its step (its result says why) and ends its run in `error` (its later steps still run).
"""
from backend.workflows.starters import install_starters

__all__ = ["install_starters"]
