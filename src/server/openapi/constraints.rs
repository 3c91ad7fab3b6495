//! The constraints the server enforces, written into the document's schemas and parameters
//! (issue 19): patterns, lengths, enums and bounds, each taken from the validator it describes
//! (`core::name`, `core::value`, `core::duration`, the handlers' limits), so that exactly the
//! requests the document calls valid are the ones the server accepts.

use serde_json::{Value, json};

use crate::core::duration::MAX_DURATION;
use crate::core::name::{MAX_LABEL_LEN, MAX_SECRET_NAME_LEN, refused_patterns};
use crate::core::value::MAX_VALUE_LEN;

/// Control characters (Unicode category Cc, as Rust's `char::is_control`), for patterns.
const CONTROL: &str = "\\u0000-\\u001f\\u007f-\\u009f";

/// A secret name (DESIGN §5): the syntax, and none of the refused names or prefixes (ignoring
/// case).
fn secret_name() -> Value {
    let refused: Vec<String> = refused_patterns()
        .iter()
        .map(|p| {
            let (stem, prefix) = p.strip_suffix('*').map_or((*p, false), |stem| (stem, true));
            let caseless: String = stem
                .chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            if prefix {
                caseless
            } else {
                format!("{caseless}$")
            }
        })
        .collect();
    json!({
        "type": "string",
        "pattern": format!("^(?!{})[A-Za-z_][A-Za-z0-9_]*$", refused.join("|")),
        "minLength": 1,
        "maxLength": MAX_SECRET_NAME_LEN,
        "description": "`^[A-Za-z_][A-Za-z0-9_]*$`, at most 128 bytes, none of the names that change how programs load code, whom they trust or where they connect (DESIGN §5)",
    })
}

/// A team, user, environment or identity name.
fn label() -> Value {
    json!({
        "type": "string",
        "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$",
        "minLength": 1,
        "maxLength": MAX_LABEL_LEN,
    })
}

/// A secret value: 1 to 64 KiB of text without NUL. JSON Schema counts characters: a value of
/// many multi-byte characters may pass `maxLength` and still be over 64 KiB (400
/// `invalid_value`, documented).
fn value() -> Value {
    json!({
        "type": "string",
        "pattern": "^[^\\u0000]+$",
        "minLength": 1,
        "maxLength": MAX_VALUE_LEN,
        "description": "write-only; 1 byte to 64 KiB of UTF-8 text without NUL",
    })
}

/// A description: at most 1024 characters, without NUL.
fn description() -> Value {
    json!({"type": "string", "pattern": "^[^\\u0000]*$", "maxLength": 1024})
}

/// An expiry: `never`, or a whole number without leading zeros and a unit, from one second to
/// 100 years (`core::duration`).
fn expiry() -> Value {
    let max_s = MAX_DURATION.as_secs();
    let units: [(&str, u64, u64); 7] = [
        ("ms", 1000, max_s * 1000),
        ("s", 1, max_s),
        ("m", 1, max_s / 60),
        ("h", 1, max_s / 3600),
        ("d", 1, max_s / 86_400),
        ("w", 1, max_s / (7 * 86_400)),
        ("y", 1, max_s / (365 * 86_400)),
    ];
    let forms: Vec<String> = units
        .iter()
        .map(|(unit, lo, hi)| format!("(?:{}){unit}", range_pattern(*lo, *hi)))
        .collect();
    json!({
        "type": "string",
        "pattern": format!("^(?:never|{})$", forms.join("|")),
        "description": "`never`, or a whole number and a unit (`ms`, `s`, `m`, `h`, `d`, `w` = 7 days, `y` = 365 days) from 1s to 100 years, such as `90d`",
    })
}

/// A regular expression for the decimal numbers from `lo` to `hi`, without leading zeros.
fn range_pattern(lo: u64, hi: u64) -> String {
    let mut parts = Vec::new();
    let mut start = lo;
    while start <= hi {
        // The largest block from `start` that is "a fixed prefix, then any digits": `start`
        // must end in as many zeros as the block has free digits.
        let mut width = 0u32;
        loop {
            let next = width + 1;
            let span = 10u64.pow(next);
            if !start.is_multiple_of(span) || start + span - 1 > hi {
                break;
            }
            width = next;
        }
        let end = start + 10u64.pow(width) - 1;
        let digits = start.to_string();
        let fixed = &digits[..digits.len() - width as usize];
        parts.push(match width {
            0 => fixed.to_owned(),
            1 => format!("{fixed}[0-9]"),
            w => format!("{fixed}[0-9]{{{w}}}"),
        });
        start = end + 1;
    }
    parts.join("|")
}

/// Sets the schema of property `field` of component `schema` (keeping its description).
fn property(doc: &mut Value, schema: &str, field: &str, constraint: &Value) {
    let target = &mut doc["components"]["schemas"][schema]["properties"][field];
    let nullable = target["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|v| v == "null"));
    let description = target["description"].clone();
    let mut merged = constraint.clone();
    if nullable {
        merged = json!({"oneOf": [constraint, {"type": "null"}]});
    }
    if !description.is_null() {
        merged["description"] = description;
    }
    *target = merged;
}

/// An array of `items`, at most `max` of them.
fn array_of(items: &Value, max: Option<usize>) -> Value {
    let mut array = json!({"type": "array", "items": items});
    if let Some(max) = max {
        array["maxItems"] = json!(max);
    }
    array
}

/// Sets the schema of parameter `name` of every operation on `path`.
fn parameter(doc: &mut Value, path: &str, name: &str, schema: &Value) {
    let Some(item) = doc["paths"][path].as_object_mut() else {
        return;
    };
    for op in item.values_mut() {
        // `get_mut`: indexing a missing key mutably would insert a `null`.
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            for p in params.iter_mut().filter(|p| p["name"] == name) {
                p["schema"] = schema.clone();
            }
        }
    }
}

fn enumeration(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// Writes every constraint into `doc`.
pub(super) fn apply(doc: &mut Value) {
    let name = secret_name();
    let names = array_of(&name, Some(1000));
    let scope = enumeration(&["team", "personal"]);
    let role = enumeration(&["owner", "admin", "builder"]);
    let key_name = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        "pattern": format!("^[^\\s{CONTROL}](?:[^{CONTROL}]*[^\\s{CONTROL}])?$"),
        "description": "where the key is used: 1 to 100 characters, no control characters, no whitespace at either end",
    });
    for (schema, field, constraint) in [
        ("CreateKey", "name", key_name),
        ("CreateKey", "kind", enumeration(&["personal", "team"])),
        ("CreateKey", "capability", enumeration(&["run", "manage"])),
        ("CreateKey", "identity", label()),
        ("CreateKey", "expires", expiry()),
        ("CreateSecret", "scope", scope.clone()),
        ("CreateSecret", "name", name.clone()),
        ("CreateSecret", "value", value()),
        ("CreateSecret", "description", description()),
        ("UpdateSecret", "value", value()),
        (
            "Sealed",
            "key_id",
            json!({"type": "string", "pattern": "^[0-9a-f]{16}$"}),
        ),
        (
            "Sealed",
            "enc",
            json!({"type": "string", "pattern": "^[A-Za-z0-9+/]{43}=$", "description": "32 bytes, standard base64"}),
        ),
        (
            "Sealed",
            "ciphertext",
            json!({
                "type": "string",
                "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
                "minLength": 24,
                "maxLength": crate::core::seal::MAX_CIPHERTEXT_BASE64,
                "description": "the ciphertext and its 16-byte tag, standard base64",
            }),
        ),
        ("UpdateSecret", "description", description()),
        ("PutList", "secrets", names.clone()),
        ("PutList", "release", names.clone()),
        ("PutList", "description", description()),
        ("AddMember", "name", label()),
        ("AddMember", "role", role.clone()),
        ("AddMember", "expires", expiry()),
        ("SetRole", "role", role),
        (
            "ResolveRun",
            "trigger",
            enumeration(&["cli", "slack", "linear", "api", "schedule", "integration"]),
        ),
        ("ResolveRun", "environment", label()),
        ("ResolveRun", "secrets", names.clone()),
        ("ResolveRun", "required", names),
    ] {
        property(doc, schema, field, &constraint);
    }
    let key_id = json!({"type": "string", "pattern": "^[0-9A-Za-z]{8}$"});
    parameter(doc, "/v1/api-keys/{id}", "id", &key_id);
    parameter(doc, "/v1/secrets/{scope}/{name}", "scope", &scope);
    parameter(doc, "/v1/secrets/{scope}/{name}", "name", &secret_name());
    for path in ["/v1/environments/{name}", "/v1/identities/{name}"] {
        parameter(doc, path, "name", &label());
    }
    parameter(doc, "/v1/members/{user}", "user", &label());
    let limit = json!({"type": "integer", "minimum": 1, "maximum": 500});
    parameter(doc, "/v1/runs", "limit", &limit);
    parameter(doc, "/v1/audit", "limit", &limit);
    parameter(
        doc,
        "/v1/runs",
        "status",
        &enumeration(&["started", "exec", "refused", "finished"]),
    );
    parameter(
        doc,
        "/v1/audit",
        "outcome",
        &enumeration(&["ok", "denied", "refused", "failed"]),
    );
    // Cursors are opaque, but of a shape the server always reads (handlers::cursor).
    parameter(
        doc,
        "/v1/runs",
        "cursor",
        &json!({"type": "string", "pattern": "^[0-9]{1,19}\\.run_[0-9a-f]{32}$"}),
    );
    parameter(
        doc,
        "/v1/audit",
        "cursor",
        &json!({"type": "string", "pattern": "^[0-9]{1,19}$"}),
    );
    environments_reserve_nothing(doc);
    cross_field_rules(doc);
    broker_policies(doc);
}

/// A host of a broker policy (`core::broker::Host`): a DNS name (labels of letters, digits and
/// inner hyphens, at most 63 each and 253 in all, the last not all digits) or an IPv4 address,
/// and an optional port from 1 to 65535 without a leading zero.
fn broker_host() -> Value {
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    json!({
        "type": "string",
        "pattern": format!(
            "^(?=[^:]{{1,253}}(?::|$))(?:{octet}(?:\\.{octet}){{3}}|(?:{label}\\.)*(?![0-9]+(?::|$)){label})(?::(?:{}))?$",
            range_pattern(1, 65535)
        ),
        "description": "a host name or an IPv4 address, with an optional port (`api.example.com`, `uploads.example.com:8443`)",
    })
}

/// Broker policies in requests (`PolicyInput`): a preset, or one to 16 hosts; with a preset,
/// `hosts` may only repeat the preset's own list (the form the answers show). Answers keep
/// `PolicySpec`, which has both.
fn broker_policies(doc: &mut Value) {
    use crate::core::broker::{HeaderForm, MAX_HOSTS, Preset};
    let schemas = &mut doc["components"]["schemas"];
    let mut input = schemas["PolicySpec"].clone();
    let presets: Vec<Value> = Preset::ALL
        .iter()
        .map(|p| json!(p.as_str()))
        .chain([Value::Null])
        .collect();
    let forms: Vec<Value> = HeaderForm::ALL
        .iter()
        .map(|f| json!(f.as_str()))
        .chain([Value::Null])
        .collect();
    input["description"] =
        json!("A broker policy in a request: a preset, or hosts; a header form; `always`.");
    input["properties"]["preset"] = json!({"enum": presets});
    input["properties"]["header"] = json!({"enum": forms});
    input["properties"]["hosts"] = array_of(&broker_host(), Some(MAX_HOSTS));
    let mut rules = vec![json!({
        "if": {"anyOf": [
            {"not": {"required": ["preset"]}},
            {"required": ["preset"], "properties": {"preset": {"type": "null"}}},
        ]},
        "then": {"required": ["hosts"], "properties": {"hosts": {"minItems": 1}}},
    })];
    for preset in Preset::ALL {
        rules.push(json!({
            "if": {"required": ["preset"], "properties": {"preset": {"const": preset.as_str()}}},
            "then": {"properties": {"hosts": {"enum": [[], preset.hosts()]}}},
        }));
    }
    input["allOf"] = json!(rules);
    schemas["PolicyInput"] = input;
    let policy = json!({"oneOf": [{"$ref": "#/components/schemas/PolicyInput"}, {"type": "null"}]});
    schemas["CreateSecret"]["properties"]["broker"] = policy.clone();
    schemas["UpdateSecret"]["properties"]["broker"] = policy;
    schemas["AdHocBroker"]["properties"]["policy"] =
        json!({"$ref": "#/components/schemas/PolicyInput"});
    schemas["AdHocBroker"]["properties"]["name"] = secret_name();
    schemas["ResolveRun"]["properties"]["broker"]["maxItems"] = json!(1000);
    schemas["ResolveRun"]["properties"]["no_broker"] = array_of(&secret_name(), Some(1000));
    // BYOK (DESIGN §14): the names a device may hold keys for, one per provider at most.
    let variables: Vec<&str> = crate::core::byok::Provider::ALL
        .iter()
        .map(|p| p.variable())
        .collect();
    schemas["ResolveRun"]["properties"]["byok"] = array_of(
        &enumeration(&variables),
        Some(crate::core::byok::Provider::ALL.len()),
    );
    schemas["UpdateTeam"]["properties"]["byok"] = enumeration(&["allowed", "forbidden"]);
}

/// Rules between fields that the handlers enforce: a key bound to an identity is a team key
/// and never `manage` (`invalid_identity`, `invalid_capability`); a write carries a value as
/// `value` or `sealed_value`, not both (`invalid_value`); an update names a new value, a new
/// description or a policy (`empty_update`).
fn cross_field_rules(doc: &mut Value) {
    doc["components"]["schemas"]["CreateKey"]["allOf"] = json!([{
        "if": {"required": ["identity"], "properties": {"identity": {"type": "string"}}},
        "then": {"properties": {
            "kind": {"const": "team"},
            "capability": {"enum": ["run", null]},
        }},
    }]);
    // A value comes plain or sealed (DESIGN §12), never both.
    doc["components"]["schemas"]["CreateSecret"]["oneOf"] = json!([
        {"required": ["value"], "not": {"required": ["sealed_value"]}},
        {"required": ["sealed_value"], "not": {"required": ["value"]}},
    ]);
    doc["components"]["schemas"]["UpdateSecret"]["not"] =
        json!({"required": ["value", "sealed_value"]});
    doc["components"]["schemas"]["UpdateSecret"]["anyOf"] = json!([
        {"required": ["value"], "properties": {"value": {"type": "string"}}},
        {"required": ["sealed_value"], "properties": {"sealed_value": {"type": "object"}}},
        {"required": ["description"], "properties": {"description": {"type": "string"}}},
        {"required": ["broker"]},
    ]);
}

/// An environment reserves nothing: its `PUT` body has no `release` (its own schema) and its
/// `DELETE` no `release` or `force` (the handlers refuse them for environments).
fn environments_reserve_nothing(doc: &mut Value) {
    let mut environment = doc["components"]["schemas"]["PutList"].clone();
    if let Some(properties) = environment["properties"].as_object_mut() {
        properties.remove("release");
    }
    environment["description"] = json!("`PUT /v1/environments/{name}`.");
    doc["components"]["schemas"]["PutEnvironment"] = environment;
    doc["paths"]["/v1/environments/{name}"]["put"]["requestBody"]["content"]["application/json"]
        ["schema"] = json!({"$ref": "#/components/schemas/PutEnvironment"});
    if let Some(params) =
        doc["paths"]["/v1/environments/{name}"]["delete"]["parameters"].as_array_mut()
    {
        params.retain(|p| p["name"] != "release" && p["name"] != "force");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `text` is in the language of a `range_pattern` (alternatives of digits and
    /// `[0-9]` or `[0-9]{n}`), checked by hand: no regex engine is needed for these shapes.
    fn matches(pattern: &str, text: &str) -> bool {
        pattern.split('|').any(|alt| {
            let (fixed, free) = match alt.find('[') {
                Some(at) => {
                    let rest = &alt[at + "[0-9]".len()..];
                    let n: usize = rest
                        .strip_prefix('{')
                        .and_then(|r| r.strip_suffix('}'))
                        .map_or(1, |n| n.parse().expect("count"));
                    (&alt[..at], n)
                }
                None => (alt, 0),
            };
            text.len() == fixed.len() + free
                && text.starts_with(fixed)
                && text[fixed.len()..].bytes().all(|b| b.is_ascii_digit())
        })
    }

    #[test]
    fn range_patterns_are_exact() {
        for (lo, hi) in [
            (1, 100),
            (1, 36_500),
            (1000, 3_153_600_000_000),
            (1, 5214),
            (7, 7),
        ] {
            let pattern = range_pattern(lo, hi);
            for n in [
                lo,
                hi,
                lo + 1,
                hi - 1,
                u64::midpoint(lo, hi),
                hi / 3 + 1,
                99,
                100,
                1000,
                36_499,
            ] {
                if n >= lo && n <= hi {
                    assert!(matches(&pattern, &n.to_string()), "{n} not in {pattern}");
                }
            }
            for n in [lo - 1, hi + 1, hi * 10, 0] {
                if n < lo || n > hi {
                    assert!(!matches(&pattern, &n.to_string()), "{n} in {pattern}");
                }
            }
            assert!(!matches(&pattern, &format!("0{lo}")), "no leading zero");
        }
    }
}
