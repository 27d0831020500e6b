//! The client API's actor state, reminders and timers.

use super::*;

impl Actors {
    fn state_key(&self, actor_type: &str, id: &str, key: &str) -> String {
        format!("{}||{actor_type}||{id}||{key}", self.app_id)
    }

    /// Read one key of an actor's state: bytes and metadata, `None` when missing.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "actors", op = "get_state", actor_type, actor_id = id))]
    pub async fn get_state(
        &self,
        actor_type: &str,
        id: &str,
        key: &str,
    ) -> Result<Option<StateValue>, ApiError> {
        check(actor_type, id)?;
        if key.is_empty() {
            return Err(missing("key"));
        }
        let store = self.store()?;
        let found = store
            .get_raw(&self.state_key(actor_type, id, key))
            .await
            .map_err(store_error(codes::ERR_ACTOR_STATE_GET))?;
        Ok(found.map(|(data, _, metadata)| (data, metadata)))
    }

    /// Apply state operations atomically. When the actor runs here, the
    /// transaction also rewrites its lease over the lease's ETag: a gateway
    /// that lost the lease cannot write (the fencing token).
    #[tracing::instrument(level = "debug", skip_all, fields(block = "actors", op = "transaction", actor_type, actor_id = id))]
    pub async fn transact_state(
        &self,
        actor_type: &str,
        id: &str,
        operations: Vec<StateOperation>,
    ) -> Result<(), ApiError> {
        check(actor_type, id)?;
        let store = self.store()?;
        let mut ops = Vec::with_capacity(operations.len() + 1);
        for (i, op) in operations.into_iter().enumerate() {
            use pb::transactional_state_operation::Request;
            let request = match op {
                StateOperation::Upsert {
                    key,
                    value,
                    metadata,
                } => {
                    if key.is_empty() {
                        return Err(missing(&format!("operations[{i}].key")));
                    }
                    if let Some(ttl) = metadata.get("ttlInSeconds")
                        && ttl.trim().parse::<i64>().is_err()
                    {
                        return Err(ApiError::new(
                            codes::ERR_MALFORMED_REQUEST,
                            format!(
                                "operations[{i}].metadata.ttlInSeconds: {ttl:?} is not a whole number"
                            ),
                        ));
                    }
                    Request::Set(pb::SetRequest {
                        key: self.state_key(actor_type, id, &key),
                        value,
                        etag: None,
                        content_type: metadata.get("contentType").cloned().unwrap_or_default(),
                        metadata,
                        options: None,
                    })
                }
                StateOperation::Delete { key } => {
                    if key.is_empty() {
                        return Err(missing(&format!("operations[{i}].key")));
                    }
                    Request::Delete(pb::DeleteRequest {
                        key: self.state_key(actor_type, id, &key),
                        etag: None,
                        metadata: HashMap::new(),
                        options: None,
                    })
                }
            };
            ops.push(pb::TransactionalStateOperation {
                request: Some(request),
            });
        }
        let host = self.host();
        let slot = host.as_ref().and_then(|h| h.active(actor_type, id));
        let fenced = match (&slot, host) {
            (Some(slot), Some(host)) => slot.held().map(|held| (host, slot, held)),
            _ => None,
        };
        let failed = store_error(codes::ERR_ACTOR_STATE_TRANSACTION_SAVE);
        if let Some((host, _, held)) = &fenced {
            ops.push(
                host.placement
                    .fence(actor_type, id, held)
                    .map_err(&failed)?,
            );
        }
        match store.transact(ops).await {
            Ok(()) => {}
            Err(StoreError::Conflict) if fenced.is_some() => {
                if let Some((host, slot, _)) = fenced {
                    host.lost(slot).await;
                }
                return Err(ApiError::new(
                    codes::ERR_ACTOR_STATE_TRANSACTION_SAVE,
                    format!(
                        "actor {actor_type}/{id}: this gateway no longer holds the actor's lease; nothing was written"
                    ),
                ));
            }
            Err(err) => return Err(failed(err)),
        }
        if let Some((host, slot, _)) = fenced {
            match host.placement.reread(actor_type, id).await {
                Ok(Some(held)) => slot.set_held(held),
                Ok(None) => host.lost(slot).await,
                Err(err) => tracing::warn!(error = %err, "could not reread an actor lease"),
            }
        }
        Ok(())
    }

    /// Create or replace a reminder.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "actors", op = "create_reminder", actor_type, actor_id = id, name))]
    pub async fn create_reminder(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
        request: ReminderRequest,
    ) -> Result<(), ApiError> {
        check(actor_type, id)?;
        if name.is_empty() {
            return Err(missing("reminder name"));
        }
        let reminders = self.reminders()?;
        let reminder = Reminders::build(id, name, request)
            .map_err(|why| ApiError::new(codes::ERR_MALFORMED_REQUEST, why))?;
        reminders
            .put(actor_type, reminder)
            .await
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_CREATE))?;
        self.wake.notify_one();
        Ok(())
    }

    /// One reminder.
    pub async fn get_reminder(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<ReminderInfo, ApiError> {
        check(actor_type, id)?;
        self.reminders()?
            .get(actor_type, id, name)
            .await
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_GET))?
            .map(ReminderInfo::from)
            .ok_or_else(|| {
                ApiError::new(
                    codes::ERR_ACTOR_REMINDER_NOT_FOUND,
                    format!("reminder {name} of actor {actor_type}/{id} not found"),
                )
            })
    }

    /// Delete a reminder (no error when there is none, as daprd).
    pub async fn delete_reminder(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        check(actor_type, id)?;
        self.reminders()?
            .delete(actor_type, Some(id), Some(name))
            .await
            .map(drop)
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_DELETE))
    }

    /// Delete every reminder of a type, or of one actor.
    pub async fn delete_reminders(
        &self,
        actor_type: &str,
        id: Option<&str>,
    ) -> Result<usize, ApiError> {
        if actor_type.is_empty() {
            return Err(missing("actor type"));
        }
        self.reminders()?
            .delete(actor_type, id.filter(|i| !i.is_empty()), None)
            .await
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_DELETE))
    }

    /// Reminders of a type, or of one actor.
    pub async fn list_reminders(
        &self,
        actor_type: &str,
        id: Option<&str>,
    ) -> Result<Vec<ReminderInfo>, ApiError> {
        if actor_type.is_empty() {
            return Err(missing("actor type"));
        }
        Ok(self
            .reminders()?
            .list(actor_type, id.filter(|i| !i.is_empty()))
            .await
            .map_err(store_error(codes::ERR_ACTOR_REMINDER_GET))?
            .into_iter()
            .map(ReminderInfo::from)
            .collect())
    }

    /// Create or replace a timer (on the gateway running the actor).
    #[tracing::instrument(level = "debug", skip_all, fields(block = "actors", op = "create_timer", actor_type, actor_id = id, name))]
    pub async fn create_timer(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
        request: TimerRequest,
    ) -> Result<(), ApiError> {
        if name.is_empty() {
            return Err(missing("timer name"));
        }
        let timer = Timer::parse(request)
            .map_err(|why| ApiError::new(codes::ERR_MALFORMED_REQUEST, why))?;
        self.dispatch(actor_type, id, Action::TimerCreate(name.to_owned(), timer))
            .await
            .map_err(|e| {
                if e.code == codes::ERR_ACTOR_INVOKE_METHOD.code {
                    ApiError::new(codes::ERR_ACTOR_TIMER_CREATE, e.message)
                } else {
                    e
                }
            })
            .map(drop)
    }

    /// Delete a timer.
    pub async fn delete_timer(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        check(actor_type, id)?;
        // A timer only lives on the gateway running the actor; an actor
        // active nowhere has none, and is not activated just to delete one.
        let placement = self.placement()?;
        let active_somewhere = self.host().and_then(|h| h.active(actor_type, id)).is_some()
            || !matches!(
                placement.owner(actor_type, id).await,
                Ok(placement::Owner::Free)
            );
        if !active_somewhere {
            return Ok(());
        }
        self.dispatch(actor_type, id, Action::TimerDelete(name.to_owned()))
            .await
            .map_err(|e| ApiError::new(codes::ERR_ACTOR_TIMER_DELETE, e.message))
            .map(drop)
    }
}
