//! The queries every SQL backend shares, written once (DESIGN §8: one `Store` trait, one
//! contract). Both engines speak the same SQL for these; the differences are few and live in
//! each backend: how a write transaction starts (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's
//! advisory lock), how a run is resolved and recorded (group commit on SQLite, one
//! `REPEATABLE READ` transaction on PostgreSQL), and a handful of queries that need a function
//! or column only one engine has. Queries are written with `?` placeholders; each backend's
//! `sql` function turns them into what its engine expects.
//!
//! Configuration changes begin with the backend's `write()`, which moves the cache generation
//! on (see `store::cache`); run records begin with `record()`, which does not, so a busy
//! platform keeps its caches; last-used times begin with `touch()`, which only the key rows
//! kept for authentication depend on.
//!
//! [`sql_store!`] expands, inside a backend's module, to the shared helper functions and the
//! whole `impl Store`, with the backend's own methods spliced in. A macro rather than generic
//! code: sqlx's generic bounds over `Database` for every bound and decoded type would say
//! less than the two expansions do.

/// Expands to the shared `Store` implementation for `$store` on `$db`; `$sql` turns a query
/// with `?` placeholders into an `AssertSqlSafe` string for the engine; `specific` holds the
/// backend's own methods (`resolve_run`, `runs`, and any overrides).
macro_rules! sql_store {
    (
        store: $store:ty,
        db: $db:ty,
        sql: $sql:path,
        specific: { $($specific:tt)* }
    ) => {
        async fn insert_audit(
            conn: &mut <$db as sqlx::Database>::Connection,
            e: &AuditEvent,
        ) -> Result<(), StoreError> {
            sqlx::query($sql(format!(
                "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES {AUDIT_VALUES}"
            )))
            .bind(e.team)
            .bind(e.at)
            .bind(e.actor.user.map(|u| u.0))
            .bind(e.actor.key.as_deref())
            .bind(e.actor.name.as_deref())
            .bind(e.actor.on_behalf_of.as_deref())
            .bind(e.actor.capability.map(Capability::as_str))
            .bind(e.actor.client.as_deref())
            .bind(e.actor.user_agent.as_deref())
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.outcome)
            .bind(&e.detail)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn insert_key(
            conn: &mut <$db as sqlx::Database>::Connection,
            team: i64,
            user: Option<UserId>,
            creator: UserId,
            key: &NewKey,
        ) -> Result<i64, StoreError> {
            let row = sqlx::query($sql(
                "INSERT INTO api_keys (key_id, digest, last4, team_id, kind, capability, user_id,
                     created_by, role_at_creation, identity, name, created_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            ))
            .bind(key.key_id.as_str())
            .bind(key.digest.as_bytes().as_slice())
            .bind(&key.last4)
            .bind(team)
            .bind(kind_text(key.kind))
            .bind(key.capability.as_str())
            .bind(user.map(|u| u.0))
            .bind(creator.0)
            .bind(key.role_at_creation.map(Role::as_str))
            .bind(key.identity.as_ref().map(Label::as_str))
            .bind(&key.name)
            .bind(key.created_at)
            .bind(key.expires_at)
            .fetch_one(&mut *conn)
            .await?;
            Ok(row.try_get("id")?)
        }

        /// Stores a decision's shared record, unless it is stored already.
        /// A team must keep at least one owner: a change that leaves none is refused (and rolled back
        /// with the transaction).
        async fn refuse_ownerless(
            conn: &mut <$db as sqlx::Database>::Connection,
            team: i64,
        ) -> Result<(), StoreError> {
            let owners: i64 =
                sqlx::query($sql("SELECT count(*) AS n FROM members WHERE team_id = ? AND role = 'owner'"))
                    .bind(team)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("n")?;
            if owners == 0 {
                return Err(StoreError::Conflict("a team must keep at least one owner"));
            }
            Ok(())
        }

        async fn insert_audits(
            conn: &mut <$db as sqlx::Database>::Connection,
            events: &[AuditEvent],
        ) -> Result<(), StoreError> {
            for e in events {
                insert_audit(&mut *conn, e).await?;
            }
            Ok(())
        }

        /// One environment or identity, in the caller's transaction.
        async fn read_list(
            conn: &mut <$db as sqlx::Database>::Connection,
            kind: ListKind,
            team: i64,
            name: &Label,
        ) -> Result<Option<NamedList>, StoreError> {
            let row = sqlx::query($sql(format!(
                "SELECT name, description, secrets, updated_at, revision FROM {} WHERE team_id = ? AND name = ?",
                list_table(kind)
            )))
            .bind(team)
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(named_list).transpose()
        }

        /// Every identity's list of `team` (name, secret names), in the caller's transaction.
        async fn read_identities(
            conn: &mut <$db as sqlx::Database>::Connection,
            team: i64,
        ) -> Result<Vec<(Label, Vec<SecretName>)>, StoreError> {
            let mut out = Vec::new();
            for row in sqlx::query($sql("SELECT name, secrets FROM identities WHERE team_id = ? ORDER BY name"))
                .bind(team)
                .fetch_all(&mut *conn)
                .await?
            {
                out.push((label(row.try_get("name")?)?, parse_names(&row.try_get::<String, _>("secrets")?)?));
            }
            Ok(out)
        }

        /// What replacing identity `name`'s list by `after` releases (`core::resolve::released`).
        async fn releases(
            conn: &mut <$db as sqlx::Database>::Connection,
            team: i64,
            name: &Label,
            after: &[SecretName],
        ) -> Result<Vec<SecretName>, StoreError> {
            let identities = read_identities(conn, team).await?;
            let before = identities
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, list)| list.as_slice())
                .unwrap_or_default();
            let others = identities
                .iter()
                .filter(|(n, _)| n != name)
                .flat_map(|(_, list)| list);
            Ok(crate::core::resolve::released(before, after, others))
        }

        /// Keys bound to identity `name` and not yet revoked.
        async fn bound_keys(
            conn: &mut <$db as sqlx::Database>::Connection,
            team: i64,
            name: &Label,
        ) -> Result<Vec<KeyRef>, StoreError> {
            let rows = sqlx::query($sql(
                "SELECT key_id, name FROM api_keys WHERE team_id = ? AND identity = ? AND revoked_at IS NULL
                 ORDER BY id",
            ))
            .bind(team)
            .bind(name.as_str())
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(key_ref).collect()
        }

        /// The secret a new one named `name` in `scope` (owned by `owner`) conflicts with
        /// (DESIGN §5), if any: one of its scope with another spelling (or the same), or, across
        /// the team and a personal scope, one that differs from it only in case.
        async fn name_conflict(
            conn: &mut <$db as sqlx::Database>::Connection,
            team: i64,
            scope_of_new: Scope,
            owner: Option<UserId>,
            name: &SecretName,
        ) -> Result<Option<Existing>, StoreError> {
            let rows = sqlx::query($sql(
                "SELECT s.scope, s.owner_id, o.name AS owner_name, s.name FROM secrets s
                 LEFT JOIN users o ON o.id = s.owner_id
                 WHERE s.team_id = ? AND s.name_key = ? ORDER BY s.scope, s.id",
            ))
            .bind(team)
            .bind(name.folded())
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                let existing = Existing {
                    scope: scope(&row.try_get::<String, _>("scope")?)?,
                    owner: row.try_get::<Option<i64>, _>("owner_id")?.map(UserId),
                    owner_name: row.try_get("owner_name")?,
                    name: secret_name(row.try_get("name")?)?,
                };
                let same_scope = existing.scope == scope_of_new
                    && (scope_of_new == Scope::Team || existing.owner == owner);
                let across = existing.scope != scope_of_new && existing.name != *name;
                if same_scope || across {
                    return Ok(Some(existing));
                }
            }
            Ok(None)
        }

        /// Reads everything resolution may need about `team`, inside the caller's transaction
        /// (one snapshot): see [`TeamData`](super::cache::TeamData).
        async fn read_team(
            conn: &mut <$db as sqlx::Database>::Connection,
            team: i64,
        ) -> Result<super::cache::TeamData, StoreError> {
            // Reservation compares names ignoring case (`core::resolve::released`).
            let mut reserved: BTreeMap<String, Vec<Label>> = BTreeMap::new();
            for (identity, names) in read_identities(conn, team).await? {
                for name in names {
                    let entry = reserved.entry(name.folded()).or_default();
                    if !entry.contains(&identity) {
                        entry.push(identity.clone());
                    }
                }
            }
            let mut data = super::cache::TeamData::default();
            for row in sqlx::query($sql(
                "SELECT id, scope, owner_id, name, version, key_version, ciphertext, broker FROM secrets
                 WHERE team_id = ? ORDER BY id",
            ))
            .bind(team)
            .fetch_all(&mut *conn)
            .await?
            {
                let id = SecretId(row.try_get("id")?);
                let name = secret_name(row.try_get("name")?)?;
                let version = u32_of(row.try_get("version")?)?;
                let owner = row.try_get::<Option<i64>, _>("owner_id")?.map(UserId);
                let scope_of_row = scope(&row.try_get::<String, _>("scope")?)?;
                data.sealed.insert(
                    id,
                    std::sync::Arc::new(Sealed {
                        id,
                        scope: scope_of_row,
                        owner,
                        name: name.clone(),
                        version,
                        key_version: u32_of(row.try_get("key_version")?)?,
                        ciphertext: row.try_get::<Vec<u8>, _>("ciphertext")?,
                        broker: super::rows::broker_policy(row.try_get("broker")?)?,
                        key: std::sync::OnceLock::new(),
                    }),
                );
                match (scope_of_row, owner) {
                    (Scope::Personal, Some(owner)) => {
                        data.personal.entry(owner).or_default().push(PersonalSecret {
                            id,
                            owner,
                            name,
                            version,
                        });
                    }
                    (Scope::Personal, None) => {
                        return Err(StoreError::Corrupt(format!("personal secret {} has no owner", id.0)));
                    }
                    (Scope::Team, _) => {
                        let reserved_for = reserved.get(&name.folded()).cloned().unwrap_or_default();
                        data.team.push(TeamSecret {
                            id,
                            name,
                            version,
                            reserved_for,
                        });
                    }
                }
            }
            for row in sqlx::query($sql("SELECT name, secrets FROM environments WHERE team_id = ?"))
                .bind(team)
                .fetch_all(&mut *conn)
                .await?
            {
                let name = label(row.try_get("name")?)?;
                let secrets = row
                    .try_get::<Option<String>, _>("secrets")?
                    .map(|s| parse_names(&s))
                    .transpose()?;
                data.environments.insert(name.clone(), Environment { name, secrets });
            }
            Ok(data)
        }

        /// The key row and its user's current membership, for authentication.
        async fn read_auth_key(
            pool: &sqlx::Pool<$db>,
            key_id: &KeyId,
        ) -> Result<Option<AuthKey>, StoreError> {
            let row = sqlx::query($sql(format!(
                "SELECT {KEY_COLUMNS}, u.name AS user_name, m.role AS member_role,
                     cm.role AS creator_role
                 FROM api_keys k JOIN users c ON c.id = k.created_by
                 LEFT JOIN users u ON u.id = k.user_id
                 LEFT JOIN members m ON m.team_id = k.team_id AND m.user_id = k.user_id
                 LEFT JOIN members cm ON cm.team_id = k.team_id AND cm.user_id = k.created_by
                 WHERE k.key_id = ?"
            )))
            .bind(key_id.as_str())
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let key = key_row(&row)?;
            let member = match (
                row.try_get::<Option<String>, _>("user_name")?,
                row.try_get::<Option<String>, _>("member_role")?,
            ) {
                (Some(name), Some(r)) => Some((name, role(&r)?)),
                _ => None,
            };
            let creator_role = row
                .try_get::<Option<String>, _>("creator_role")?
                .map(|r| role(&r))
                .transpose()?;
            Ok(Some(AuthKey { key, member, creator_role }))
        }

                #[async_trait::async_trait]
                impl Store for $store {
                    $($specific)*

            async fn touch_keys(&self, used: &[(i64, Millis)]) -> Result<(), StoreError> {
                if used.is_empty() {
                    return Ok(());
                }
                let mut tx = self.touch().await?;
                for (row, at) in used {
                    // Only forward, whichever replica writes (CASE: both engines know it).
                    sqlx::query($sql(
                        "UPDATE api_keys SET last_used_at = CASE
                             WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END
                         WHERE id = ?",
                    ))
                    .bind(at)
                    .bind(at)
                    .bind(row)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query($sql("SELECT 1")).execute(&self.pool).await?;
                Ok(())
            }

            async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
                let row = sqlx::query($sql("SELECT value FROM meta WHERE key = ?"))
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("value")).transpose()?)
            }

            async fn init_meta(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
                let done =
                    sqlx::query($sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING"))
                        .bind(key)
                        .bind(value)
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn bootstrap(&self, first: Bootstrap) -> Result<Option<UserId>, StoreError> {
                let mut tx = self.write().await?;
                let teams: i64 = sqlx::query($sql("SELECT count(*) AS n FROM teams"))
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if teams > 0 {
                    return Ok(None);
                }
                sqlx::query($sql("INSERT INTO teams (id, name, data_key, key_version, created_at) VALUES (?, ?, ?, ?, ?)"))
                    .bind(first.team.id)
                    .bind(first.team.name.as_str())
                    .bind(&first.team.data_key)
                    .bind(i64::from(first.team.key_version))
                    .bind(first.at)
                    .execute(&mut *tx)
                    .await?;
                let owner = UserId(
                    sqlx::query($sql("INSERT INTO users (name, created_at) VALUES (?, ?) RETURNING id"))
                        .bind(first.owner.as_str())
                        .bind(first.at)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("id")?,
                );
                sqlx::query($sql(
                    "INSERT INTO members (team_id, user_id, role, created_at) VALUES (?, ?, 'owner', ?)",
                ))
                .bind(first.team.id)
                .bind(owner.0)
                .bind(first.at)
                .execute(&mut *tx)
                .await?;
                insert_key(&mut tx, first.team.id, Some(owner), owner, &first.key).await?;
                let event = AuditEvent {
                    team: Some(first.team.id),
                    at: first.at,
                    actor: super::Actor::default(),
                    action: "team.bootstrap".into(),
                    target: first.team.name.to_string(),
                    outcome: "ok".into(),
                    detail: serde_json::json!({ "owner": first.owner.as_str(), "key_id": first.key.key_id.as_str() }).to_string(),
                };
                insert_audit(&mut tx, &event).await?;
                tx.commit().await?;
                Ok(Some(owner))
            }

            async fn team(&self, id: i64) -> Result<Option<TeamRow>, StoreError> {
                let row = sqlx::query($sql("SELECT id, name, data_key, key_version FROM teams WHERE id = ?"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok(TeamRow {
                        id: r.try_get("id")?,
                        name: label(r.try_get("name")?)?,
                        data_key: r.try_get("data_key")?,
                        key_version: u32_of(r.try_get("key_version")?)?,
                    })
                })
                .transpose()
            }

            async fn team_byok(&self, team: i64) -> Result<TeamSetting, StoreError> {
                let row = sqlx::query($sql("SELECT byok FROM teams WHERE id = ?"))
                    .bind(team)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(row) => team_setting(&row.try_get::<String, _>("byok")?),
                    None => Err(StoreError::Corrupt(format!("no team {team}"))),
                }
            }

            async fn seal_key(&self, team: i64) -> Result<Option<SealKeyRow>, StoreError> {
                let row = sqlx::query($sql("SELECT seal_key_id, seal_public, seal_private FROM teams WHERE id = ?"))
                    .bind(team)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("no team {team}")))?;
                let key_id: Option<String> = row.try_get("seal_key_id")?;
                let public: Option<Vec<u8>> = row.try_get("seal_public")?;
                let wrapped: Option<Vec<u8>> = row.try_get("seal_private")?;
                match (key_id, public, wrapped) {
                    (Some(key_id), Some(public), Some(wrapped_private)) => Ok(Some(SealKeyRow { key_id, public, wrapped_private })),
                    (None, None, None) => Ok(None),
                    _ => Err(StoreError::Corrupt(format!("team {team}'s sealing key is incomplete"))),
                }
            }

            async fn init_seal_key(
                &self,
                team: i64,
                key: SealKeyRow,
                audit: AuditEvent,
            ) -> Result<SealKeyRow, StoreError> {
                let mut tx = self.write().await?;
                let done = sqlx::query($sql("UPDATE teams SET seal_key_id = ?, seal_public = ?, seal_private = ? WHERE id = ? AND seal_key_id IS NULL"))
                    .bind(&key.key_id)
                    .bind(&key.public)
                    .bind(&key.wrapped_private)
                    .bind(team)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 1 {
                    insert_audit(&mut tx, &audit).await?;
                }
                tx.commit().await?;
                self.seal_key(team)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("no sealing key for team {team}")))
            }

            async fn create_session(
                &self,
                session: SessionRow,
                idle_before: Millis,
                audit: AuditEvent,
            ) -> Result<(), StoreError> {
                let mut tx = self.record().await?;
                sqlx::query($sql("DELETE FROM ui_sessions WHERE last_seen_at < ? OR expires_at <= ?"))
                    .bind(idle_before)
                    .bind(session.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($sql("INSERT INTO ui_sessions (digest, team_id, key_id, key_digest, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)"))
                    .bind(&session.digest)
                    .bind(session.team)
                    .bind(&session.key_id)
                    .bind(&session.key_digest)
                    .bind(session.created_at)
                    .bind(session.last_seen_at)
                    .bind(session.expires_at)
                    .execute(&mut *tx)
                    .await?;
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn session(&self, digest: &[u8]) -> Result<Option<SessionRow>, StoreError> {
                let row = sqlx::query($sql("SELECT digest, team_id, key_id, key_digest, created_at, last_seen_at, expires_at FROM ui_sessions WHERE digest = ?"))
                    .bind(digest)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok(SessionRow {
                        digest: r.try_get("digest")?,
                        team: r.try_get("team_id")?,
                        key_id: r.try_get("key_id")?,
                        key_digest: r.try_get("key_digest")?,
                        created_at: r.try_get("created_at")?,
                        last_seen_at: r.try_get("last_seen_at")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .transpose()
            }

            async fn touch_session(&self, digest: &[u8], at: Millis) -> Result<(), StoreError> {
                let mut tx = self.record().await?;
                sqlx::query($sql("UPDATE ui_sessions SET last_seen_at = ? WHERE digest = ? AND last_seen_at < ?"))
                    .bind(at)
                    .bind(digest)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn end_sessions(
                &self,
                digest: Option<&[u8]>,
                key_id: &str,
                audit: AuditEvent,
            ) -> Result<u64, StoreError> {
                let mut tx = self.record().await?;
                let done = match digest {
                    Some(digest) => sqlx::query($sql("DELETE FROM ui_sessions WHERE digest = ? AND key_id = ?"))
                        .bind(digest)
                        .bind(key_id)
                        .execute(&mut *tx)
                        .await?,
                    None => sqlx::query($sql("DELETE FROM ui_sessions WHERE key_id = ?"))
                        .bind(key_id)
                        .execute(&mut *tx)
                        .await?,
                };
                let ended = done.rows_affected();
                if ended > 0 {
                    insert_audit(&mut tx, &audit).await?;
                }
                tx.commit().await?;
                Ok(ended)
            }

            async fn set_team_byok(
                &self,
                team: i64,
                setting: TeamSetting,
                audit: AuditEvent,
            ) -> Result<(), StoreError> {
                let mut tx = self.write().await?;
                sqlx::query($sql("UPDATE teams SET byok = ? WHERE id = ?"))
                    .bind(setting.as_str())
                    .bind(team)
                    .execute(&mut *tx)
                    .await?;
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_key(
                &self,
                team: i64,
                user: Option<UserId>,
                creator: UserId,
                key: NewKey,
                audit: AuditEvent,
            ) -> Result<i64, StoreError> {
                let mut tx = self.write().await?;
                let id = insert_key(&mut tx, team, user, creator, &key).await?;
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn keys(&self, team: i64, user: Option<UserId>) -> Result<Vec<KeyRow>, StoreError> {
                let rows = sqlx::query($sql(format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys k JOIN users c ON c.id = k.created_by
                     WHERE k.team_id = ? AND (? IS NULL OR k.user_id = ? OR k.created_by = ?)
                     ORDER BY k.created_at, k.id"
                )))
                .bind(team)
                .bind(user.map(|u| u.0))
                .bind(user.map(|u| u.0))
                .bind(user.map(|u| u.0))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_row).collect()
            }

            async fn revoke_key(
                &self,
                team: i64,
                key_id: &KeyId,
                user: Option<UserId>,
                audit: AuditEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.write().await?;
                let done = sqlx::query($sql(
                    "UPDATE api_keys SET revoked_at = ? WHERE team_id = ? AND key_id = ?
                       AND revoked_at IS NULL AND (? IS NULL OR user_id = ? OR created_by = ?)",
                ))
                .bind(audit.at)
                .bind(team)
                .bind(key_id.as_str())
                .bind(user.map(|u| u.0))
                .bind(user.map(|u| u.0))
                .bind(user.map(|u| u.0))
                .execute(&mut *tx)
                .await?;
                let found = done.rows_affected() == 1;
                if found {
                    insert_audit(&mut tx, &audit).await?;
                }
                tx.commit().await?;
                Ok(found)
            }

            async fn members(&self, team: i64) -> Result<Vec<MemberRow>, StoreError> {
                let rows = sqlx::query($sql(
                    "SELECT u.id, u.name, m.role, m.created_at FROM members m JOIN users u ON u.id = m.user_id
                     WHERE m.team_id = ? ORDER BY u.name",
                ))
                .bind(team)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(member_row).collect()
            }

            async fn member(&self, team: i64, name: &Label) -> Result<Option<MemberRow>, StoreError> {
                let row = sqlx::query($sql(
                    "SELECT u.id, u.name, m.role, m.created_at FROM members m JOIN users u ON u.id = m.user_id
                     WHERE m.team_id = ? AND u.name = ?",
                ))
                .bind(team)
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(member_row).transpose()
            }

            async fn add_member(
                &self,
                team: i64,
                name: &Label,
                role: Role,
                key: NewKey,
                creator: UserId,
                audit: AuditEvent,
            ) -> Result<UserId, StoreError> {
                let mut tx = self.write().await?;
                let taken = sqlx::query($sql(
                    "SELECT 1 AS one FROM members m JOIN users u ON u.id = m.user_id
                     WHERE m.team_id = ? AND u.name = ?",
                ))
                .bind(team)
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if taken.is_some() {
                    return Err(StoreError::Refused(Refused::MemberExists));
                }
                // Always a new user: a removed member's name comes back as someone new.
                let user = UserId(
                    sqlx::query($sql("INSERT INTO users (name, created_at) VALUES (?, ?) RETURNING id"))
                        .bind(name.as_str())
                        .bind(audit.at)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("id")?,
                );
                sqlx::query($sql("INSERT INTO members (team_id, user_id, role, created_at) VALUES (?, ?, ?, ?)"))
                    .bind(team)
                    .bind(user.0)
                    .bind(role.as_str())
                    .bind(audit.at)
                    .execute(&mut *tx)
                    .await?;
                insert_key(&mut tx, team, Some(user), creator, &key).await?;
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(user)
            }

            async fn set_role(
                &self,
                team: i64,
                user: UserId,
                role: Role,
                audit: AuditEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.write().await?;
                let done = sqlx::query($sql("UPDATE members SET role = ? WHERE team_id = ? AND user_id = ?"))
                    .bind(role.as_str())
                    .bind(team)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                let found = done.rows_affected() == 1;
                if found {
                    refuse_ownerless(&mut tx, team).await?;
                    insert_audit(&mut tx, &audit).await?;
                }
                tx.commit().await?;
                Ok(found)
            }

            async fn remove_member(
                &self,
                team: i64,
                user: UserId,
                at: Millis,
                audit: &AuditFor<'_, Removed>,
            ) -> Result<Option<Removed>, StoreError> {
                let mut tx = self.write().await?;
                let done = sqlx::query($sql("DELETE FROM members WHERE team_id = ? AND user_id = ?"))
                    .bind(team)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() != 1 {
                    return Ok(None);
                }
                refuse_ownerless(&mut tx, team).await?;
                let keys = sqlx::query($sql(
                    "SELECT key_id, name FROM api_keys
                     WHERE team_id = ? AND kind = 'personal' AND user_id = ? AND revoked_at IS NULL ORDER BY id",
                ))
                .bind(team)
                .bind(user.0)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query($sql(
                    "UPDATE api_keys SET revoked_at = ?
                     WHERE team_id = ? AND kind = 'personal' AND user_id = ? AND revoked_at IS NULL",
                ))
                .bind(at)
                .bind(team)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
                let secrets = sqlx::query($sql(
                    "SELECT name FROM secrets WHERE team_id = ? AND scope = 'personal' AND owner_id = ?
                     ORDER BY name_key",
                ))
                .bind(team)
                .bind(user.0)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query($sql("DELETE FROM secrets WHERE team_id = ? AND scope = 'personal' AND owner_id = ?"))
                    .bind(team)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                let removed = Removed {
                    revoked: keys.iter().map(key_ref).collect::<Result<_, _>>()?,
                    deleted: secrets
                        .iter()
                        .map(|r| secret_name(r.try_get("name")?))
                        .collect::<Result<_, _>>()?,
                };
                insert_audits(&mut tx, &audit(&removed)).await?;
                tx.commit().await?;
                Ok(Some(removed))
            }

            async fn create_secret(&self, secret: NewSecret, audit: AuditEvent) -> Result<(), StoreError> {
                let mut tx = self.write().await?;
                if let Some(existing) =
                    name_conflict(&mut tx, secret.team, secret.scope, secret.owner, &secret.name).await?
                {
                    return Err(StoreError::Refused(Refused::NameConflict(existing)));
                }
                sqlx::query($sql(
                    "INSERT INTO secrets (id, team_id, scope, owner_id, owner_key, name, name_key,
                         description, version, key_version, ciphertext, value_len, created_at, created_by,
                         updated_at, updated_by, broker)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                ))
                .bind(secret.id.0)
                .bind(secret.team)
                .bind(scope_text(secret.scope))
                .bind(secret.owner.map(|u| u.0))
                .bind(secret.owner.map_or(0, |u| u.0))
                .bind(secret.name.as_str())
                .bind(secret.name.folded())
                .bind(&secret.description)
                .bind(i64::from(secret.key_version))
                .bind(&secret.ciphertext)
                .bind(i64::from(secret.value_len))
                .bind(secret.at)
                .bind(secret.actor.0)
                .bind(secret.at)
                .bind(secret.actor.0)
                .bind(super::rows::broker_text(secret.broker.as_ref()))
                .execute(&mut *tx)
                .await?;
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn secret(
                &self,
                team: i64,
                scope: Scope,
                owner: Option<UserId>,
                name: &SecretName,
            ) -> Result<Option<SecretRow>, StoreError> {
                let row = sqlx::query($sql(format!(
                    "SELECT {SECRET_COLUMNS} FROM secrets s LEFT JOIN users o ON o.id = s.owner_id
                     JOIN users c ON c.id = s.created_by JOIN users u ON u.id = s.updated_by
                     WHERE s.team_id = ? AND s.scope = ? AND s.owner_key = ? AND s.name_key = ?"
                )))
                .bind(team)
                .bind(scope_text(scope))
                .bind(owner.map_or(0, |u| u.0))
                .bind(name.folded())
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(secret_row).transpose()
            }

            async fn secrets(
                &self,
                team: i64,
                viewer: UserId,
                all: bool,
            ) -> Result<Vec<SecretRow>, StoreError> {
                let rows = sqlx::query($sql(format!(
                    "SELECT {SECRET_COLUMNS} FROM secrets s LEFT JOIN users o ON o.id = s.owner_id
                     JOIN users c ON c.id = s.created_by JOIN users u ON u.id = s.updated_by
                     WHERE s.team_id = ? AND (s.scope = 'team' OR s.owner_id = ? OR ?)
                     ORDER BY s.name_key, s.scope = 'personal', o.name"
                )))
                .bind(team)
                .bind(viewer.0)
                .bind(all)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(secret_row).collect()
            }

            async fn update_secret(
                &self,
                update: SecretUpdate,
                audit: AuditEvent,
            ) -> Result<(), StoreError> {
                let mut tx = self.write().await?;
                let (ciphertext, len) = update
                    .value
                    .as_ref()
                    .map_or((None, None), |(c, l)| (Some(c), Some(*l)));
                let bump = i64::from(update.value.is_some());
                if let Some(expected) = update.if_revision {
                    let now: Option<i64> = sqlx::query($sql("SELECT revision FROM secrets WHERE id = ?"))
                        .bind(update.id.0)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get("revision"))
                        .transpose()?;
                    if now.and_then(|n| u64::try_from(n).ok()) != Some(expected) {
                        return Err(StoreError::Stale);
                    }
                }
                let done = sqlx::query($sql(
                    "UPDATE secrets SET
                         ciphertext = coalesce(?, ciphertext), value_len = coalesce(?, value_len),
                         version = version + ?, description = coalesce(?, description),
                         broker = CASE WHEN ? THEN ? ELSE broker END,
                         updated_at = ?, updated_by = ?, revision = revision + 1
                     WHERE id = ? AND version = ?",
                ))
                .bind(ciphertext)
                .bind(len.map(i64::from))
                .bind(bump)
                .bind(update.description.as_deref())
                .bind(update.broker.is_some())
                .bind(update.broker.as_ref().and_then(|b| super::rows::broker_text(b.as_ref())))
                .bind(update.at)
                .bind(update.actor.0)
                .bind(update.id.0)
                .bind(i64::from(update.expected_version))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict(
                        "the secret changed or was deleted meanwhile",
                    ));
                }
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_secret(&self, id: SecretId, audit: AuditEvent) -> Result<bool, StoreError> {
                let mut tx = self.write().await?;
                let done = sqlx::query($sql("DELETE FROM secrets WHERE id = ?"))
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                let found = done.rows_affected() == 1;
                if found {
                    insert_audit(&mut tx, &audit).await?;
                }
                tx.commit().await?;
                Ok(found)
            }

            async fn put_list(
                &self,
                kind: ListKind,
                team: i64,
                list: NamedList,
                if_revision: Option<u64>,
                release: &[SecretName],
                audit: &AuditFor<'_, ListChange>,
            ) -> Result<ListChange, StoreError> {
                let mut tx = self.write().await?;
                let before = read_list(&mut tx, kind, team, &list.name).await?;
                if if_revision.is_some() && before.as_ref().map(|b| b.revision) != if_revision {
                    return Err(StoreError::Stale);
                }
                let released = match kind {
                    ListKind::Environment => Vec::new(),
                    ListKind::Identity => {
                        let after = list.secrets.as_deref().unwrap_or_default();
                        let released = releases(&mut tx, team, &list.name, after).await?;
                        if !all_released(&released, release) {
                            return Err(StoreError::Refused(Refused::WouldRelease(released)));
                        }
                        released
                    }
                };
                let secrets = list.secrets.as_deref().map(names_json);
                let sql = match kind {
                    ListKind::Environment => {
                        "INSERT INTO environments (team_id, name, description, secrets, updated_at)
                         VALUES (?, ?, ?, ?, ?) ON CONFLICT (team_id, name) DO UPDATE SET
                         description = excluded.description, secrets = excluded.secrets,
                         updated_at = excluded.updated_at, revision = environments.revision + 1"
                    }
                    ListKind::Identity => {
                        "INSERT INTO identities (team_id, name, description, secrets, updated_at)
                         VALUES (?, ?, ?, coalesce(?, '[]'), ?) ON CONFLICT (team_id, name) DO UPDATE SET
                         description = excluded.description, secrets = excluded.secrets,
                         updated_at = excluded.updated_at, revision = identities.revision + 1"
                    }
                };
                sqlx::query($sql(sql))
                    .bind(team)
                    .bind(list.name.as_str())
                    .bind(&list.description)
                    .bind(secrets)
                    .bind(list.updated_at)
                    .execute(&mut *tx)
                    .await?;
                let change = ListChange { before, released };
                insert_audits(&mut tx, &audit(&change)).await?;
                tx.commit().await?;
                Ok(change)
            }

            async fn list(
                &self,
                kind: ListKind,
                team: i64,
                name: &Label,
            ) -> Result<Option<NamedList>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                read_list(&mut conn, kind, team, name).await
            }

            async fn lists(&self, kind: ListKind, team: i64) -> Result<Vec<NamedList>, StoreError> {
                let sql = match kind {
                    ListKind::Environment => {
                        "SELECT name, description, secrets, updated_at, revision FROM environments WHERE team_id = ? ORDER BY name"
                    }
                    ListKind::Identity => {
                        "SELECT name, description, secrets, updated_at, revision FROM identities WHERE team_id = ? ORDER BY name"
                    }
                };
                let rows = sqlx::query($sql(sql)).bind(team).fetch_all(&self.pool).await?;
                rows.iter().map(named_list).collect()
            }

            async fn delete_list(
                &self,
                kind: ListKind,
                team: i64,
                name: &Label,
                release: &[SecretName],
                force: bool,
                at: Millis,
                audit: &AuditFor<'_, ListDeleted>,
            ) -> Result<Option<ListDeleted>, StoreError> {
                let mut tx = self.write().await?;
                let Some(before) = read_list(&mut tx, kind, team, name).await? else {
                    return Ok(None);
                };
                let (released, revoked) = match kind {
                    ListKind::Environment => (Vec::new(), Vec::new()),
                    ListKind::Identity => {
                        let keys = bound_keys(&mut tx, team, name).await?;
                        let released = releases(&mut tx, team, name, &[]).await?;
                        if !keys.is_empty() && !force {
                            return Err(StoreError::Refused(Refused::IdentityInUse {
                                keys,
                                would_release: released,
                            }));
                        }
                        if !all_released(&released, release) {
                            return Err(StoreError::Refused(Refused::WouldRelease(released)));
                        }
                        (released, keys)
                    }
                };
                let deleted = ListDeleted { before, released, revoked };
                let events = audit(&deleted);
                if !deleted.revoked.is_empty() {
                    sqlx::query($sql(
                        "UPDATE api_keys SET revoked_at = ? WHERE team_id = ? AND identity = ? AND revoked_at IS NULL",
                    ))
                    .bind(at)
                    .bind(team)
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query($sql(format!("DELETE FROM {} WHERE team_id = ? AND name = ?", list_table(kind))))
                    .bind(team)
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                insert_audits(&mut tx, &events).await?;
                tx.commit().await?;
                Ok(Some(deleted))
            }

            async fn finish_run(
                &self,
                team: i64,
                id: &str,
                outcome: serde_json::Value,
                at: Millis,
                audit: AuditEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.record().await?;
                let done = sqlx::query($sql(
                    "UPDATE runs SET status = 'finished', ended_at = ?, outcome = ?
                     WHERE team_id = ? AND id = ? AND status = 'started'",
                ))
                .bind(at)
                .bind(json(&outcome))
                .bind(team)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let found = done.rows_affected() == 1;
                if found {
                    insert_audit(&mut tx, &audit).await?;
                }
                tx.commit().await?;
                Ok(found)
            }

            async fn run(&self, team: i64, id: &str) -> Result<Option<RunRow>, StoreError> {
                let row = sqlx::query($sql(format!(
                    "SELECT {RUN_SELECT} WHERE r.team_id = ? AND r.id = ?"
                )))
                .bind(team)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(run_row).transpose()
            }

            async fn audit(&self, team: i64, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
                let rows = sqlx::query($sql(format!(
                    "SELECT id, {AUDIT_COLUMNS} FROM audit
                     WHERE (team_id = ? OR team_id IS NULL)
                       AND (? IS NULL OR id < ?)
                       AND (? IS NULL OR substr(action, 1, length(?)) = ?)
                       AND (? IS NULL OR actor_name = ? OR on_behalf_of = ?)
                       AND (? IS NULL OR outcome = ?)
                       AND (? IS NULL OR at >= ?)
                       AND (? IS NULL OR at < ?)
                     ORDER BY id DESC LIMIT ?"
                )))
                .bind(team)
                .bind(q.before)
                .bind(q.before)
                .bind(q.action.as_deref())
                .bind(q.action.as_deref())
                .bind(q.action.as_deref())
                .bind(q.actor.as_deref())
                .bind(q.actor.as_deref())
                .bind(q.actor.as_deref())
                .bind(q.outcome.as_deref())
                .bind(q.outcome.as_deref())
                .bind(q.since)
                .bind(q.since)
                .bind(q.until)
                .bind(q.until)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(audit_row).collect()
            }

            async fn record_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                let mut tx = self.record().await?;
                insert_audits(&mut tx, events).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn runs(&self, team: i64, q: &RunQuery) -> Result<Vec<RunRow>, StoreError> {
                let (before_at, before_id) = q.before.clone().unzip();
                let rows = sqlx::query($sql(format!(
                    "SELECT {RUN_SELECT}
                     WHERE r.team_id = ?
                       AND (? IS NULL OR r.started_at < ? OR (r.started_at = ? AND r.id < ?))
                       AND (? IS NULL OR r.user_id = ?)
                       AND (? IS NULL OR r.user_id IN (SELECT id FROM users WHERE name = ?))
                       AND (? IS NULL OR r.key_id = ?)
                       AND (? IS NULL OR r.identity = ?)
                       AND (? IS NULL OR r.environment = ?)
                       AND (? IS NULL OR r.status = ?)
                       AND (? IS NULL OR r.started_at >= ?)
                       AND (? IS NULL OR r.started_at < ?)
                     ORDER BY r.started_at DESC, r.id DESC LIMIT ?"
                )))
                .bind(team)
                .bind(before_at)
                .bind(before_at)
                .bind(before_at)
                .bind(before_id.as_deref())
                .bind(q.only_user.map(|u| u.0))
                .bind(q.only_user.map(|u| u.0))
                .bind(q.user.as_deref())
                .bind(q.user.as_deref())
                .bind(q.key.as_deref())
                .bind(q.key.as_deref())
                .bind(q.identity.as_deref())
                .bind(q.identity.as_deref())
                .bind(q.environment.as_deref())
                .bind(q.environment.as_deref())
                .bind(q.status.as_deref())
                .bind(q.status.as_deref())
                .bind(q.since)
                .bind(q.since)
                .bind(q.until)
                .bind(q.until)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(run_row).collect()
            }
                }
    };
}

pub(super) use sql_store;

/// `?` placeholders as PostgreSQL's `$1`, `$2`, … (the shared queries hold no other `?`).
#[must_use]
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A write transaction that, once committed, moves a cache generation on (or, when the engine
/// moves it inside the transaction, nothing more). It dereferences to the connection, so
/// queries run on `&mut *tx` as on a plain transaction.
pub(super) struct Write<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    moves: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl<DB: sqlx::Database> Write<DB> {
    /// Wraps `tx`; `moves` is the generation to move on after the commit, if any.
    pub(super) fn new(
        tx: sqlx::Transaction<'static, DB>,
        moves: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    ) -> Self {
        Self { tx, moves }
    }

    /// Commits, then moves the generation on. It moves on even when the commit reports an
    /// error (the outcome may be unknown): a needless refill costs less than a stale entry.
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        let done = self.tx.commit().await;
        if let Some(generation) = &self.moves {
            generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        done
    }
}

impl<DB: sqlx::Database> std::ops::Deref for Write<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Write<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            super::numbered("SELECT a FROM t WHERE b = ? AND (? IS NULL OR c = ?)"),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $3)"
        );
    }
}
