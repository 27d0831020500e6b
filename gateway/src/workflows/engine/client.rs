//! What clients ask of instances: start, read, wait, raise events,
//! terminate, suspend and resume, purge, list.

use super::*;

impl Engine {
    pub(crate) async fn start_instance(
        &self,
        name: &str,
        id: &str,
        input: Option<String>,
        parent: Option<Parent>,
        start_at_ms: Option<i64>,
    ) -> Result<(), ApiError> {
        let execution_id = uuid::Uuid::new_v4().simple().to_string();
        let key = self.meta_key(id);
        let now = now_ms();
        let fresh = Meta {
            name: name.to_owned(),
            status: Some(Status::Pending),
            created_ms: now,
            updated_ms: now,
            input: input.clone(),
            execution_id: execution_id.clone(),
            parent: parent.clone(),
            start_at_ms: start_at_ms.filter(|at| *at > now),
            inbox: vec![events::pack(&events::started(
                name,
                id,
                &execution_id,
                input,
                parent.as_ref(),
            ))],
            ..Meta::default()
        };
        let started = self
            .store
            .update::<Meta, _>(&key, |current| match current {
                Some(existing) if !existing.status().is_terminal() => {
                    // A child started twice (recovery) is the same child.
                    let same_child = parent.is_some() && existing.parent == parent;
                    (Some(existing), same_child)
                }
                _ => (Some(fresh.clone()), true),
            })
            .await
            .map_err(failed(codes::ERR_START_WORKFLOW))?;
        if !started {
            return Err(ApiError::new(
                codes::ERR_START_WORKFLOW,
                format!("workflow instance {id} is already running"),
            ));
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(id);
        }
        // The instance is stored: run it even if indexing it fails now (the
        // index is retried in the background; it is what recovery reads).
        self.kick(id);
        self.changed(id);
        if let Err(err) = self.set_index(id, Some(Status::Pending)).await {
            tracing::warn!(instance_id = id, error = %err, "indexing a new workflow failed; retrying in the background");
            self.index_later(id, Status::Pending);
        }
        Ok(())
    }

    /// Keep trying to index `id` (until it succeeds or the gateway stops).
    pub(super) fn index_later(&self, id: &str, status: Status) {
        let Some(engine) = self.this() else {
            return;
        };
        let id = id.to_owned();
        self.spawn(async move {
            let stop = engine
                .context
                .get()
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            let mut delay = Duration::from_millis(100);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                // Only if the instance did not move on meanwhile.
                let current = engine.store.get::<Meta>(&engine.meta_key(&id)).await;
                let status = match current {
                    Ok(Some(found)) => found.value.view(&id).status,
                    Ok(None) => return,
                    Err(_) => status,
                };
                if engine.set_index(&id, Some(status)).await.is_ok() {
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<Instance>, ApiError> {
        Ok(self
            .store
            .get::<Meta>(&self.meta_key(id))
            .await
            .map_err(failed(codes::ERR_GET_WORKFLOW))?
            .map(|m| m.value.view(id)))
    }

    pub(crate) async fn wait(
        &self,
        id: &str,
        completion: bool,
    ) -> Result<Option<Instance>, ApiError> {
        let watch = self.watch(id);
        loop {
            let changed = watch.notify.notified();
            let Some(instance) = self.get(id).await? else {
                return Ok(None);
            };
            let done = if completion {
                instance.status.is_terminal()
            } else {
                instance.status != Status::Pending
            };
            if done {
                return Ok(Some(instance));
            }
            // Woken by a status change here; polling covers other gateways.
            let _ = tokio::time::timeout(Duration::from_millis(500), changed).await;
        }
    }

    pub(crate) async fn raise_event(
        &self,
        id: &str,
        name: &str,
        input: Option<String>,
    ) -> Result<(), ApiError> {
        let event = unscheduled(EventType::EventRaised(dt::EventRaisedEvent {
            name: name.to_owned(),
            input,
        }));
        match self.deliver(id, None, event, |_| true).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(not_found(id)),
            Err(err) => Err(failed(codes::ERR_RAISE_EVENT_WORKFLOW)(err)),
        }
    }

    pub(crate) async fn terminate(
        &self,
        id: &str,
        output: Option<String>,
        recursive: bool,
    ) -> Result<(), ApiError> {
        let key = self.meta_key(id);
        let fail = failed(codes::ERR_TERMINATE_WORKFLOW);
        loop {
            let Some(current) = self.store.get::<Meta>(&key).await.map_err(&fail)? else {
                return Err(not_found(id));
            };
            let mut meta = current.value;
            if meta.status().is_terminal() {
                return Ok(());
            }
            let children = meta.all_children.clone();
            let reason = output.clone();
            let appended = vec![
                unscheduled(EventType::ExecutionTerminated(
                    dt::ExecutionTerminatedEvent {
                        input: reason.clone(),
                        recurse: recursive,
                    },
                )),
                unscheduled(EventType::ExecutionCompleted(dt::ExecutionCompletedEvent {
                    workflow_status: Status::Terminated.proto(),
                    result: reason.clone(),
                    failure_details: None,
                })),
            ];
            meta.status = Some(Status::Terminated);
            meta.output = reason;
            meta.inbox.clear();
            meta.activities.clear();
            meta.timers.clear();
            meta.children.clear();
            meta.suspended = false;
            match self.commit(id, &current.etag, meta.clone(), appended).await {
                Ok(true) => {
                    self.finished(id, &meta).await;
                    if recursive {
                        for child in children {
                            let _ = Box::pin(self.terminate(&child, None, true)).await;
                        }
                    }
                    return Ok(());
                }
                Ok(false) => continue,
                Err(err) => return Err(fail(err)),
            }
        }
    }

    pub(crate) async fn suspend(
        &self,
        id: &str,
        suspend: bool,
        reason: Option<String>,
    ) -> Result<(), ApiError> {
        let entry = if suspend {
            codes::ERR_PAUSE_WORKFLOW
        } else {
            codes::ERR_RESUME_WORKFLOW
        };
        let key = self.meta_key(id);
        let fail = failed(entry);
        loop {
            let Some(current) = self.store.get::<Meta>(&key).await.map_err(&fail)? else {
                return Err(not_found(id));
            };
            let mut meta = current.value;
            if meta.status().is_terminal() || meta.suspended == suspend {
                return Ok(());
            }
            meta.suspended = suspend;
            let event = if suspend {
                EventType::ExecutionSuspended(dt::ExecutionSuspendedEvent {
                    input: reason.clone(),
                })
            } else {
                EventType::ExecutionResumed(dt::ExecutionResumedEvent {
                    input: reason.clone(),
                })
            };
            match self
                .commit(id, &current.etag, meta, vec![unscheduled(event)])
                .await
            {
                Ok(true) => break,
                Ok(false) => continue,
                Err(err) => return Err(fail(err)),
            }
        }
        let status = if suspend {
            Status::Suspended
        } else {
            // Back to what it was: RUNNING, or PENDING if it never ran.
            match self.store.get::<Meta>(&key).await {
                Ok(Some(found)) => found.value.status(),
                _ => Status::Running,
            }
        };
        self.set_index(id, Some(status)).await.map_err(&fail)?;
        self.changed(id);
        if !suspend {
            self.kick(id);
        }
        Ok(())
    }

    pub(crate) async fn purge(&self, id: &str, recursive: bool) -> Result<u32, ApiError> {
        let fail = failed(codes::ERR_PURGE_WORKFLOW);
        let Some(current) = self
            .store
            .get::<Meta>(&self.meta_key(id))
            .await
            .map_err(&fail)?
        else {
            return Err(not_found(id));
        };
        let meta = current.value;
        if !meta.status().is_terminal() {
            return Err(ApiError::new(
                codes::ERR_PURGE_WORKFLOW,
                format!(
                    "workflow instance {id} is {}; only a finished instance can be purged",
                    meta.view(id).status.name()
                ),
            ));
        }
        let mut ops = vec![delete_op(&self.meta_key(id))];
        for n in 0..meta.history_len.max(meta.history_high) {
            ops.push(delete_op(&records::event_key(&self.app_id, id, n)));
        }
        self.store.transact(ops).await.map_err(&fail)?;
        self.set_index(id, None).await.map_err(&fail)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(id);
        }
        let mut count = 1;
        if recursive {
            for child in &meta.all_children {
                if let Ok(n) = Box::pin(self.purge(child, true)).await {
                    count += n;
                }
            }
        }
        self.changed(id);
        Ok(count)
    }

    pub(crate) async fn list(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<(String, Status)>, ApiError> {
        Ok(self
            .index()
            .await
            .map_err(failed(codes::ERR_GET_WORKFLOW))?
            .into_iter()
            .filter(|(_, s)| filter.statuses.is_empty() || filter.statuses.contains(s))
            .collect())
    }

    pub(crate) async fn history(&self, id: &str) -> Result<Vec<dt::HistoryEvent>, ApiError> {
        let fail = failed(codes::ERR_GET_WORKFLOW);
        let Some(found) = self
            .store
            .get::<Meta>(&self.meta_key(id))
            .await
            .map_err(&fail)?
        else {
            return Err(not_found(id));
        };
        self.load_history(id, &found.value).await.map_err(&fail)
    }
}
