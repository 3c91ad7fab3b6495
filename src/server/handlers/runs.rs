//! Runs: resolution (the only answer that carries values), finish, list and show.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use getrandom::SysRng;
use serde_json::json;
use zeroize::Zeroizing;

use super::{
    ApiJson, ApiQuery, Shared, cursor, data_key, event, event_without_detail, no_store, one_of,
    page_limit, runs_position,
};
use crate::api::{
    ByokAnswer, ByokApplied, DryRunInfo, FinishRun, Problem, ResolveRun, Resolved, ResolvedWriter,
    RunInfo, RunPage, WouldDeliver,
};
use crate::core::broker::{self, Brokering, Policy};
use crate::core::byok::{self as byok_rule, Choice, Provider, Situation, TeamSetting};
use crate::core::crypto::{Binding, CryptoError, DataKey};
use crate::core::name::{Label, SecretName};
use crate::core::perm::Action;
use crate::core::resolve::{self, ResolveError, RunRequest, Scope, UserId};
use crate::core::value::WipingBuf;
use crate::server::App;
use crate::server::auth::{Caller, RunCaller};
use crate::server::error::ApiError;
use crate::store::{
    AuditEvent, Decide, Decided, Decision, DryRun, RunAsk, RunPlan, RunQuery, RunRow, Sealed,
};

/// A new run id: the start time in milliseconds (48 bits) then 80 random bits, in hex, like a
/// UUIDv7. Ids made later sort later, so new runs append to the end of the id index instead of
/// landing on a random page of it (each random landing is a page written per run).
fn run_id(now: i64) -> Result<String, ApiError> {
    use rand_core::TryRng;
    use std::fmt::Write as _;
    let mut random = [0u8; 10];
    SysRng
        .try_fill_bytes(&mut random)
        .map_err(|_| ApiError::from(CryptoError::Rng))?;
    let ms = u64::try_from(now).unwrap_or(0) & 0xffff_ffff_ffff;
    let mut id = format!("run_{ms:012x}");
    for b in random {
        let _ = write!(id, "{b:02x}");
    }
    Ok(id)
}

/// Any key, `run` keys included.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = ResolveRun, responses((status = 201, description = "the run and its secrets (the only response that carries values)", body = Resolved), (status = 200, description = "a dry run: the names that would be delivered, never a value", body = DryRunInfo), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, description = "a required secret is missing", body = Problem)))]
pub(in crate::server) async fn resolve(
    State(app): Shared,
    RunCaller(caller): RunCaller,
    ApiJson(body): ApiJson<ResolveRun>,
) -> Result<Response, ApiError> {
    caller.require(Action::StartRun).await?;
    let core_caller = match &caller.user {
        Some((user, _)) => resolve::Caller::Personal { user: *user },
        None => resolve::Caller::Team {
            identity: caller.identity.clone(),
        },
    };
    let request = RunRequest {
        trigger: body.trigger,
        environment: body.environment.clone(),
        secrets: body.secrets.clone(),
        required: body.required.clone(),
    };
    if body.dry_run {
        return dry_run(&app, &caller, core_caller, request).await;
    }
    let asked = Arc::new(BrokerAsk::of(&body)?);
    let byok = Arc::new(ByokAsk::of(&app, &caller, &body).await?);
    let now = app.now();
    let id = run_id(now)?;
    let base_event = event_without_detail(&app, &caller, "run.start", id.clone());
    let user = caller.user.as_ref().map(|(u, _)| *u);
    let started = RunStart {
        id,
        key_id: caller.key_id.to_string(),
        environment: request.environment.clone(),
        user,
        user_name: caller.user.as_ref().map(|(_, n)| n.clone()),
        identity: caller.identity.clone(),
        now,
        exec: body.exec,
        asked: Arc::clone(&asked),
        byok: Arc::clone(&byok),
    };
    let ask = RunAsk {
        user,
        environment: request.environment.clone(),
        inputs: request.inputs(&core_caller),
        decide: decider(core_caller, request),
        start: Box::new(move |decision| started.plan(decision, base_event)),
    };
    let run = app.store.resolve_run(caller.team, ask).await?;
    // The answer is prepared (the values opened) while the record is being committed, and
    // nothing leaves, not even a refusal, before the record is durable (fail closed).
    let prepared = match &run.decision.result {
        Ok(resolution) => Ok(answer(
            &app,
            caller.team,
            &run.plan.id,
            resolution,
            &run.decision.sealed,
            &asked,
            &byok,
        )
        .await),
        Err(e) => Err(refusal(e)),
    };
    run.durable.wait().await?;
    match &run.decision.result {
        Ok(r) => app.metrics.run("delivered", r.delivered.len()),
        Err(_) => app.metrics.run("refused", 0),
    }
    let body = prepared??;
    let response = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(Bytes::from_owner(body)),
    );
    Ok(no_store(response.into_response()))
}

/// A dry run (DESIGN §2 rule 8): decided as a run would be, answered with names only, recorded
/// as an audit event `run.dry_run` and no run.
async fn dry_run(
    app: &App,
    caller: &Caller,
    core_caller: resolve::Caller,
    request: RunRequest,
) -> Result<Response, ApiError> {
    let base_event = event_without_detail(app, caller, "run.dry_run", String::new());
    let ask = DryRun {
        user: caller.user.as_ref().map(|(u, _)| *u),
        environment: request.environment.clone(),
        inputs: request.inputs(&core_caller),
        decide: decider(core_caller, request),
        audit: Box::new(move |decision| run_audit(decision, base_event)),
    };
    let decision = app.store.dry_run(caller.team, ask).await?;
    app.metrics.run("dry_run", 0);
    let resolution = decision.result.as_ref().map_err(refusal)?;
    let info = DryRunInfo {
        trigger: resolution.trigger,
        allowlist: resolution.allowlist,
        secrets: resolution
            .delivered
            .iter()
            .map(|d| WouldDeliver {
                name: d.name.to_string(),
                scope: d.scope,
                version: d.version,
            })
            .collect(),
        missing: resolution.missing.clone(),
        shadowed: resolution
            .shadowed
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    Ok(Json(info).into_response())
}

/// Resolves `request` by `caller` over a snapshot, with its part of the run record.
fn decider(core_caller: resolve::Caller, request: RunRequest) -> Decide {
    Box::new(move |snapshot| {
        let result = resolve::resolve(&core_caller, &request, snapshot);
        let record = to_json(&DecidedRecord::of(&request, &result));
        Decided { result, record }
    })
}

/// The answer to a refused resolution.
fn refusal(e: &ResolveError) -> ApiError {
    match e {
        ResolveError::TriggerRequiresUser { trigger } => ApiError::bad_request(
            "trigger_requires_user",
            format!(
                "trigger `{trigger}` needs a user and a team key has none; use a personal key or \
                 a schedule/integration trigger"
            ),
        ),
        ResolveError::EnvironmentNotFound { name } => ApiError::not_found(
            "unknown_environment",
            format!("environment `{name}` does not exist"),
        ),
        ResolveError::RequiredMissing { missing, .. } => {
            ApiError::required_missing(missing.clone())
        }
    }
}

/// Writes the answer to a delivered run ([`api::Resolved`]), opening each value (with its kept
/// [`ValueKey`](crate::core::crypto::ValueKey), made from the team's data key on first use)
/// into one reused scratch buffer and escaping it straight into the answer.
/// Both buffers are wiped when dropped; the answer's when the server has sent it.
async fn answer(
    app: &App,
    team: i64,
    run_id: &str,
    resolution: &resolve::Resolution,
    sealed: &[Arc<Sealed>],
    asked: &BrokerAsk,
    byok: &ByokAsk,
) -> Result<WipingBuf, ApiError> {
    const ENTRY: usize = r#"{"name":"","scope":"personal","version":4294967295,"value":""},"#.len();
    let mut data: Option<DataKey> = None;
    let capacity = 256
        + sealed
            .iter()
            .map(|s| ENTRY + s.name.as_str().len() + s.ciphertext.len())
            .sum::<usize>()
        + 64 * (resolution.missing.len() + resolution.shadowed.len());
    let unwritable = |_| ApiError::internal("the answer could not be written");
    let mut out = ResolvedWriter::new(run_id, resolution.trigger, resolution.allowlist, capacity)
        .map_err(unwritable)?;
    let mut scratch = Zeroizing::new(Vec::new());
    let mut applied = Vec::new();
    for s in sealed {
        let policy = match asked.of_secret(s) {
            Brokering::Brokered(policy) => Some(policy.spec()),
            Brokering::Real | Brokering::Waived => None,
        };
        if byok.applies(&s.name) {
            applied.push(ByokApplied {
                name: s.name.to_string(),
                broker: policy.clone(),
            });
            if !byok.fallback {
                // The device key stands in: the team's value is not even opened.
                continue;
            }
        }
        let binding = Binding {
            team,
            scope: s.scope,
            owner: s.owner.map(|u| u.0),
            secret: s.id.0,
            name: s.name.as_str(),
            version: s.version,
            key_version: s.key_version,
        };
        if s.key.get().is_none() {
            let key = match data.take() {
                Some(key) => key,
                None => data_key(app, team).await?.0,
            };
            // Concurrent first opens may race; the key that loses is dropped, and wiped.
            let _ = s.key.set(key.value_key(&s.ciphertext)?);
            data = Some(key);
        }
        let value = s
            .key
            .get()
            .ok_or_else(|| ApiError::internal("a value's key was not kept"))?
            .open_into(&binding, &s.ciphertext, &mut scratch)?;
        out.secret(&s.name, s.scope, s.version, value, policy.as_ref())
            .map_err(unwritable)?;
    }
    let byok = byok.answer(applied);
    out.finish(&resolution.missing, &resolution.shadowed, byok.as_ref())
        .map_err(unwritable)
}

/// Who started a run and when: what its record and audit event say besides the resolution.
struct RunStart {
    id: String,
    key_id: String,
    environment: Option<Label>,
    user: Option<UserId>,
    user_name: Option<String>,
    identity: Option<Label>,
    now: i64,
    /// The launcher `execve`s the command: recorded as `exec`.
    exec: bool,
    /// What the run asked of the broker.
    asked: Arc<BrokerAsk>,
    /// What was decided about its device keys.
    byok: Arc<ByokAsk>,
}

/// A run's device keys (DESIGN §14): the provider variables the launcher holds keys for, and
/// whether they stand in for the team's secrets of those names. The launcher applies the same
/// local-run rule ([`byok_rule::decide`]) to what it alone knows (CI variables, container
/// signs); the platform applies it to what it knows: the key, the trigger, the team's setting.
#[derive(Debug, Default)]
struct ByokAsk {
    names: Vec<SecretName>,
    setting: TeamSetting,
    /// Why device keys are not used, when they are not.
    skipped: Option<String>,
    /// `--fallback-to-team`: the team's values are delivered too, for the broker's replays.
    fallback: bool,
}

impl ByokAsk {
    async fn of(app: &App, caller: &Caller, body: &ResolveRun) -> Result<Self, ApiError> {
        if body.byok.is_empty() {
            // Nothing offered: `byok_forced` and `byok_fallback` have nothing to act on.
            return Ok(Self::default());
        }
        if body.byok.len() > Provider::ALL.len() {
            return Err(ApiError::bad_request(
                "invalid_byok",
                "`byok` names at most one variable per provider",
            ));
        }
        if let Some(other) = body
            .byok
            .iter()
            .find(|n| Provider::of_variable(n.as_str()).is_none())
        {
            return Err(ApiError::bad_request(
                "invalid_byok",
                format!(
                    "{other} is not a provider's key variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY)"
                ),
            ));
        }
        let setting = app.store.team_byok(caller.team).await?;
        let situation = Situation {
            choice: if body.byok_forced {
                Choice::Force
            } else {
                Choice::Auto
            },
            key: caller.kind,
            trigger: body
                .trigger
                .unwrap_or_else(|| resolve::Trigger::default_for(caller.kind)),
            env: &[],
            container: &[],
            team: Some(setting),
        };
        let skipped = match byok_rule::decide(&situation) {
            byok_rule::Decision::Use { .. } => None,
            byok_rule::Decision::Skip(why) => Some(why.to_string()),
            byok_rule::Decision::Refuse(why) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "byok_refused",
                    format!("--byok cannot be honoured: {why}"),
                ));
            }
        };
        Ok(Self {
            names: body.byok.clone(),
            setting,
            fallback: body.byok_fallback && skipped.is_none(),
            skipped,
        })
    }

    /// Whether the device key stands in for `name` in this run.
    fn applies(&self, name: &SecretName) -> bool {
        self.skipped.is_none() && self.names.contains(name)
    }

    /// The answer's part, when the run offered device keys.
    fn answer(&self, applied: Vec<ByokApplied>) -> Option<ByokAnswer> {
        (!self.names.is_empty()).then(|| ByokAnswer {
            setting: self.setting,
            applied,
            skipped: self.skipped.clone(),
        })
    }
}

/// What a run asked of the broker (DESIGN §13): names brokered ad hoc, and names whose policy
/// it sets aside.
#[derive(Debug, Default)]
struct BrokerAsk {
    ad_hoc: Vec<(SecretName, Policy)>,
    waived: Vec<SecretName>,
}

impl BrokerAsk {
    fn of(body: &ResolveRun) -> Result<Self, ApiError> {
        if body.broker.len() > 1000 || body.no_broker.len() > 1000 {
            return Err(ApiError::bad_request(
                "invalid_broker",
                "a run names at most 1000 brokered and 1000 unbrokered secrets",
            ));
        }
        let mut ad_hoc = Vec::with_capacity(body.broker.len());
        for asked in &body.broker {
            let policy = Policy::from_spec(&asked.policy).map_err(|e| {
                ApiError::bad_request("invalid_broker", format!("{}: {e}", asked.name))
            })?;
            ad_hoc.push((asked.name.clone(), policy));
        }
        Ok(Self {
            ad_hoc,
            waived: body.no_broker.clone(),
        })
    }

    /// How `secret` reaches this run's command.
    fn of_secret<'a>(&'a self, secret: &'a Sealed) -> Brokering<'a> {
        let ad_hoc = self
            .ad_hoc
            .iter()
            .find(|(name, _)| *name == secret.name)
            .map(|(_, p)| p);
        broker::brokering(
            secret.broker.as_ref(),
            ad_hoc,
            self.waived.contains(&secret.name),
        )
    }
}

/// A run's own part of its record (names only, never values): who started it. The rest is its
/// decision's [`DecidedRecord`]; `GET /v1/runs/{id}` shows both as one object.
#[derive(serde::Serialize)]
struct OwnRecord<'a> {
    who: Who<'a>,
    /// Names the command got as placeholders (DESIGN §13).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    brokered: Vec<&'a SecretName>,
    /// Names whose broker policy the run set aside (`--no-broker`): the command got the value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unbrokered: Vec<&'a SecretName>,
    /// Names the user's own device key stood in for (DESIGN §14); never a value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    byok: Vec<&'a SecretName>,
    /// Whether a request the device key could not make may be replayed with the team's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    byok_fallback: Option<bool>,
    /// Why the device keys offered were not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    byok_skipped: Option<&'a str>,
}

/// The part of a run record that follows from its decision, shared by every run with the same
/// inputs over the same snapshot (and stored once for them all).
#[derive(serde::Serialize)]
struct DecidedRecord<'a> {
    environment: Option<&'a Label>,
    requested: Option<&'a [SecretName]>,
    required: &'a [SecretName],
    #[serde(flatten)]
    outcome: RecordOutcome<'a>,
}

impl<'a> DecidedRecord<'a> {
    fn of(request: &'a RunRequest, result: &'a Result<resolve::Resolution, ResolveError>) -> Self {
        let outcome = match result {
            Ok(r) => RecordOutcome::Started {
                trigger: r.trigger,
                allowlist: r.allowlist,
                user_context: r.user_context.is_some(),
                delivered: Delivered::of(&r.delivered),
                missing: &r.missing,
                shadowed: &r.shadowed,
            },
            Err(e) => RecordOutcome::Refused {
                refused: e.to_string(),
                missing: match e {
                    ResolveError::RequiredMissing { missing, .. } => Some(missing),
                    _ => None,
                },
            },
        };
        Self {
            environment: request.environment.as_ref(),
            requested: request.secrets.as_deref(),
            required: &request.required,
            outcome,
        }
    }
}

#[derive(serde::Serialize)]
struct Who<'a> {
    key_id: &'a str,
    user: Option<&'a str>,
    identity: Option<&'a Label>,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum RecordOutcome<'a> {
    Started {
        trigger: resolve::Trigger,
        allowlist: resolve::AllowlistSource,
        user_context: bool,
        delivered: Delivered<'a>,
        missing: &'a [resolve::Missing],
        shadowed: &'a [SecretName],
    },
    Refused {
        refused: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        missing: Option<&'a [resolve::Missing]>,
    },
}

/// The delivered names of a run record, by scope, each with its version:
/// `{"team": {"NAME": 3}, "personal": {"OTHER": 1}}`. A map per scope keeps a record of a
/// hundred names under one database page, where a list of objects took two.
#[derive(serde::Serialize, Default)]
struct Delivered<'a> {
    team: NameVersions<'a>,
    personal: NameVersions<'a>,
}

#[derive(Default)]
struct NameVersions<'a>(Vec<(&'a SecretName, u32)>);

impl serde::Serialize for NameVersions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, version)| (*name, *version)))
    }
}

impl<'a> Delivered<'a> {
    fn of(deliveries: &'a [resolve::Delivery]) -> Self {
        let mut delivered = Self::default();
        for d in deliveries {
            let scope = match d.scope {
                Scope::Team => &mut delivered.team,
                Scope::Personal => &mut delivered.personal,
            };
            scope.0.push((&d.name, d.version));
        }
        delivered
    }
}

/// The detail of a run's audit event. The delivered names are in the run record (the event's
/// target is the run id, written in the same transaction); the event counts them, so a run
/// is not written twice over.
#[derive(serde::Serialize)]
struct RunAudit<'a> {
    status: &'static str,
    /// A refused run's problem code (`trigger_requires_user`, `required_missing`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowlist: Option<resolve::AllowlistSource>,
    delivered_count: usize,
    missing: &'a [resolve::Missing],
}

/// A run's (or a dry run's) audit event for `decision`: `refused` with the problem code when
/// it was (DESIGN §10).
fn run_audit(decision: &Decision, mut audit: AuditEvent) -> AuditEvent {
    let detail = match &decision.result {
        Ok(r) => RunAudit {
            status: "started",
            code: None,
            allowlist: Some(r.allowlist),
            delivered_count: r.delivered.len(),
            missing: &r.missing,
        },
        Err(e) => {
            "refused".clone_into(&mut audit.outcome);
            RunAudit {
                status: "refused",
                code: Some(refusal(e).code()),
                allowlist: None,
                delivered_count: 0,
                missing: match e {
                    ResolveError::RequiredMissing { missing, .. } => missing,
                    _ => &[],
                },
            }
        }
    };
    audit.detail = to_json(&detail);
    audit
}

impl RunStart {
    /// This run's own part of its record, and its audit event, for `decision`.
    fn plan(self, decision: &Decision, audit: AuditEvent) -> RunPlan {
        let audit = run_audit(decision, audit);
        let status = match (&decision.result, self.exec) {
            (Err(_), _) => "refused",
            (Ok(_), true) => "exec",
            (Ok(_), false) => "started",
        };
        let (mut brokered, mut unbrokered, mut byok) = (Vec::new(), Vec::new(), Vec::new());
        if decision.result.is_ok() {
            for secret in &decision.sealed {
                if self.byok.applies(&secret.name) {
                    byok.push(&secret.name);
                }
                match self.asked.of_secret(secret) {
                    Brokering::Brokered(_) => brokered.push(&secret.name),
                    Brokering::Waived => unbrokered.push(&secret.name),
                    Brokering::Real => {}
                }
            }
        }
        let record = to_json(&OwnRecord {
            who: Who {
                key_id: &self.key_id,
                user: self.user_name.as_deref(),
                identity: self.identity.as_ref(),
            },
            brokered,
            unbrokered,
            byok_fallback: (!byok.is_empty()).then_some(self.byok.fallback),
            byok,
            byok_skipped: self.byok.skipped.as_deref(),
        });
        RunPlan {
            record,
            id: self.id,
            key_id: self.key_id,
            user: self.user,
            identity: self.identity,
            environment: self.environment,
            status,
            started_at: self.now,
            audit,
        }
    }
}

/// JSON text of a record made of names, numbers and enums (serializing it cannot fail).
fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

fn run_info(row: RunRow) -> RunInfo {
    RunInfo {
        id: row.id,
        status: row.status,
        started_at: row.started_at,
        ended_at: row.ended_at,
        record: row.record,
        outcome: row.outcome,
    }
}

/// Runs the caller may list: all, or only those of its own key's user (a team key that may
/// not read every run lists none: it has no user, and `run` keys do not list).
async fn run_filter(caller: &Caller) -> Result<Option<UserId>, ApiError> {
    if caller.allows(Action::ReadAllRuns) {
        return Ok(None);
    }
    caller.require(Action::ReadOwnRuns).await?;
    Ok(Some(caller.own_user().await?))
}

/// Whether `caller` may read (and finish) `run`: the key that started it always may (`run`
/// keys included); otherwise a key that may read every run, or the run's user's own key.
fn may_see(caller: &Caller, run: &RunRow, finish: bool) -> bool {
    if run.key_id == caller.key_id.as_str() {
        return caller.allows(Action::UseOwnKeyRun);
    }
    if caller.allows(Action::ReadAllRuns) {
        return true;
    }
    !finish
        && caller.allows(Action::ReadOwnRuns)
        && run.user.is_some()
        && run.user == caller.user.as_ref().map(|(u, _)| *u)
}

/// Any key, for a run it started (`run` keys included); owners and admins for every run.
#[utoipa::path(post, path = "/v1/runs/{id}/finish", tag = "runs", params(("id" = String, Path)), request_body = FinishRun, responses((status = 200, body = RunInfo), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(in crate::server) async fn finish_run(
    State(app): Shared,
    RunCaller(caller): RunCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FinishRun>,
) -> Result<Json<RunInfo>, ApiError> {
    let run = app.store.run(caller.team, &id).await?;
    let run = run
        .filter(|run| may_see(&caller, run, true))
        .ok_or_else(|| ApiError::not_found("unknown_run", "no such run"))?;
    let mut outcome = json!({
        "exit_code": body.exit_code,
        "signal": body.signal,
        "duration_ms": body.duration_ms,
        "masked": body.masked,
    });
    if !body.byok_fallbacks.is_empty() {
        outcome["byok_fallbacks"] = json!(body.byok_fallbacks);
    }
    let audit = event(&app, &caller, "run.finish", run.id.clone(), &outcome);
    if !app
        .store
        .finish_run(caller.team, &id, outcome, app.now(), audit)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_not_started",
            "the run is already finished or was refused",
        ));
    }
    let row = app
        .store
        .run(caller.team, &id)
        .await?
        .ok_or_else(|| ApiError::internal("finished run vanished"))?;
    Ok(Json(run_info(row)))
}

/// `GET /v1/runs` query.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct RunParams {
    limit: Option<u32>,
    cursor: Option<String>,
    /// A user name.
    user: Option<String>,
    /// A key id.
    key: Option<String>,
    identity: Option<String>,
    environment: Option<String>,
    /// `started`, `exec`, `refused` or `finished`.
    status: Option<String>,
    /// Unix ms, inclusive.
    since: Option<i64>,
    /// Unix ms, exclusive.
    until: Option<i64>,
}

/// Every run for owners and admins; a builder's own (`manage` keys).
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(
    ("limit" = Option<u32>, Query, description = "1 to 500 (default 50)"),
    ("cursor" = Option<String>, Query, description = "the `next_cursor` of the previous page"),
    ("user" = Option<String>, Query), ("key" = Option<String>, Query, description = "a key id"),
    ("identity" = Option<String>, Query), ("environment" = Option<String>, Query),
    ("status" = Option<String>, Query, description = "started, exec, refused or finished"),
    ("since" = Option<i64>, Query, description = "Unix ms, inclusive"),
    ("until" = Option<i64>, Query, description = "Unix ms, exclusive")),
    responses((status = 200, body = RunPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub(in crate::server) async fn list_runs(
    State(app): Shared,
    caller: Caller,
    ApiQuery(q): ApiQuery<RunParams>,
) -> Result<Json<RunPage>, ApiError> {
    let only_user = run_filter(&caller).await?;
    let limit = page_limit(q.limit)?;
    let before = q.cursor.as_deref().map(runs_position).transpose()?;
    let some = |v: Option<String>| v.filter(|v| !v.is_empty());
    let query = RunQuery {
        limit,
        before,
        only_user,
        user: some(q.user),
        key: some(q.key),
        identity: some(q.identity),
        environment: some(q.environment),
        status: one_of(
            q.status,
            &["started", "exec", "refused", "finished"],
            "status",
        )?,
        since: q.since,
        until: q.until,
    };
    let rows = app.store.runs(caller.team, &query).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| {
            rows.last()
                .map(|r| cursor(&format!("{}.{}", r.started_at, r.id)))
        })
        .flatten();
    Ok(Json(RunPage {
        runs: rows.into_iter().map(run_info).collect(),
        next_cursor,
    }))
}

/// Any key, for a run it started (`run` keys included); otherwise as `GET /v1/runs` lists.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)), responses((status = 200, body = RunInfo), (status = 404, body = Problem)))]
pub(in crate::server) async fn show_run(
    State(app): Shared,
    RunCaller(caller): RunCaller,
    Path(id): Path<String>,
) -> Result<Json<RunInfo>, ApiError> {
    let row = app.store.run(caller.team, &id).await?;
    match row {
        Some(row) if may_see(&caller, &row, false) => Ok(Json(run_info(row))),
        _ => Err(ApiError::not_found("unknown_run", "no such run")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_time_ordered_hex_with_80_random_bits() {
        let id = run_id(1_700_000_000_000).expect("id");
        let hex = id.strip_prefix("run_").expect("prefix");
        assert_eq!(hex.len(), 32, "{id}");
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{id}"
        );
        assert!(
            hex.starts_with(&format!("{:012x}", 1_700_000_000_000_u64)),
            "{id}"
        );
        let same_ms: std::collections::BTreeSet<String> = (0..100)
            .map(|_| run_id(1_700_000_000_000).expect("id"))
            .collect();
        assert_eq!(same_ms.len(), 100, "ids of one millisecond differ");
        let later = run_id(1_700_000_000_001).expect("id");
        assert!(
            same_ms.iter().all(|earlier| *earlier < later),
            "a later id sorts later"
        );
    }
}
