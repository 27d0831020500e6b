//! The reminder rows of the actors benchmark: register fire-once
//! reminders through the gateway's HTTP API, and read back from the app
//! when each one arrived against when it was due.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::actor_app::{Fire, now_us};
use crate::{APP_URL, Gateway, Http, percentile, send};

/// Registered reminders: how long it took, how many failed, the first error.
struct Registered {
    took: Duration,
    failed: usize,
    error: Option<String>,
}

/// Register one fire-once reminder `name` on each of the warm actors
/// `a-0` .. `a-{ids - 1}` over 16 clients, due at `due` (RFC 3339 and Unix
/// µs), or when `None` at once ("0s", due the moment it is registered).
async fn register(
    client: &Http,
    gw: &Gateway,
    ids: usize,
    name: &'static str,
    due: Option<(String, i64)>,
) -> Registered {
    let start = Instant::now();
    let clients = 16;
    let per = ids.div_ceil(clients);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, base, due) = (client.clone(), gw.actors.clone(), due.clone());
        tasks.push(tokio::spawn(async move {
            let (mut failed, mut error) = (0, None);
            for i in (c * per)..((c + 1) * per).min(ids) {
                let (due_time, due_us) = due.clone().unwrap_or(("0s".into(), now_us()));
                let body = serde_json::json!({"dueTime": due_time, "data": {"due": due_us}});
                let uri = format!("{base}a-{i}/reminders/{name}");
                let (status, reply) = send(&client, "POST", &uri, body.to_string().into()).await;
                if status != 204 {
                    failed += 1;
                    error.get_or_insert_with(|| {
                        format!("{status} {}", String::from_utf8_lossy(&reply))
                    });
                }
            }
            (failed, error)
        }));
    }
    let mut done = Registered {
        took: Duration::ZERO,
        failed: 0,
        error: None,
    };
    for task in tasks {
        let (failed, error) = task.await.unwrap();
        done.failed += failed;
        if done.error.is_none() {
            done.error = error;
        }
    }
    done.took = start.elapsed();
    done
}

/// Read the app's firings of reminder `name` until `expected` distinct
/// ones arrived (then half a second more, to catch repeats), or `patience`
/// ran out.
async fn collect_fires(
    client: &Http,
    name: &str,
    expected: usize,
    patience: Duration,
) -> Vec<Fire> {
    let app = APP_URL.get().unwrap();
    let deadline = Instant::now() + patience;
    let suffix = format!("/{name}");
    let mut fires: Vec<Fire> = Vec::new();
    let mut extra = None;
    loop {
        let (_, body) = send(client, "GET", &format!("{app}/bench/fires"), Vec::new()).await;
        let got: Vec<Fire> = serde_json::from_slice(&body).unwrap();
        fires.extend(got.into_iter().filter(|f| f.key.ends_with(&suffix)));
        if distinct(&fires) >= expected && extra.is_none() {
            extra = Some(Instant::now() + Duration::from_millis(500));
        }
        if extra.is_some_and(|at| Instant::now() >= at) || Instant::now() >= deadline {
            return fires;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn distinct(fires: &[Fire]) -> usize {
    fires
        .iter()
        .map(|f| &f.key)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// One reminder phase as the app saw it.
struct FireStats {
    /// Distinct reminders fired.
    fired: usize,
    /// Calls beyond the first per reminder.
    repeats: usize,
    /// Distinct fires per second, from `from_us` to the last fire.
    rate: f64,
    /// Lateness (arrival minus due time) of each reminder's first firing.
    p50: Duration,
    p99: Duration,
}

fn fire_stats(fires: &[Fire], from_us: i64) -> FireStats {
    let mut first: HashMap<&str, &Fire> = HashMap::new();
    for f in fires {
        let kept = first.entry(f.key.as_str()).or_insert(f);
        if f.at_us < kept.at_us {
            *kept = f;
        }
    }
    let mut late: Vec<Duration> = first
        .values()
        .map(|f| Duration::from_micros(u64::try_from(f.at_us - f.due_us).unwrap_or(0)))
        .collect();
    late.sort();
    let last = first.values().map(|f| f.at_us).max().unwrap_or(from_us);
    FireStats {
        fired: first.len(),
        repeats: fires.len() - first.len(),
        rate: first.len() as f64 / ((last - from_us).max(1) as f64 / 1e6),
        p50: late.get(late.len() / 2).copied().unwrap_or_default(),
        p99: if late.is_empty() {
            Duration::ZERO
        } else {
            percentile(&late, 0.99)
        },
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Wait until no reminder of the type is left (fired or failed for good).
async fn reminders_left(client: &Http, gw: &Gateway, patience: Duration) -> usize {
    let uri = gw
        .actors
        .replace("/v1.0/actors/", "/v1.0-alpha1/actors/")
        .trim_end_matches('/')
        .to_owned()
        + "/reminders";
    let deadline = Instant::now() + patience;
    loop {
        let (_, body) = send(client, "GET", &uri, Vec::new()).await;
        let listed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let left = listed["reminders"].as_array().map_or(0, Vec::len);
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reminder firing on warm actors (so no activation is timed): `ids`
/// reminders due on registration, then `together` all due at one instant.
/// (1 000 due together did not settle within minutes: see BENCHMARKS.md.)
pub(crate) async fn reminder_rows(
    store: &str,
    client: &Http,
    gw: &Gateway,
    ids: usize,
    together: usize,
) {
    // Phase 1: due as soon as registered ("0s"), 16 clients registering.
    let from = now_us();
    let reg = register(client, gw, ids, "now", None).await;
    let fires = collect_fires(client, "now", ids - reg.failed, Duration::from_secs(30)).await;
    let s = fire_stats(&fires, from);
    println!(
        "{store}: {ids} reminders due on registration (16 clients): registered in {:.2} s ({:.0}/s), {} failed; fired {} in {:.2} s from the first registration ({:.0} fires/s); lateness after registration p50 {:.1} ms, p99 {:.1} ms; {} repeated calls",
        reg.took.as_secs_f64(),
        ids as f64 / reg.took.as_secs_f64(),
        reg.failed,
        s.fired,
        s.fired as f64 / s.rate,
        s.rate,
        ms(s.p50),
        ms(s.p99),
        s.repeats,
    );
    if let Some(error) = &reg.error {
        println!("{store}:   first registration error: {error}");
    }
    let left = reminders_left(client, gw, Duration::from_secs(10)).await;
    if left > 0 {
        println!("{store}:   {left} reminders still stored 10 s later");
    }
    // Phase 2: all due at one instant after their registrations are done
    // (registering into a partition that only grows costs more per
    // reminder than phase 1, where each one left as it fired: hence 3x).
    let share = together as f64 / ids as f64;
    let lead = reg.took.mul_f64(3.0 * share) + Duration::from_secs(1);
    let due_us = now_us() + i64::try_from(lead.as_micros()).unwrap();
    // The gateway keeps millisecond precision.
    let due_us = due_us / 1000 * 1000;
    let due_time = chrono::DateTime::from_timestamp_micros(due_us)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let reg = register(client, gw, together, "later", Some((due_time, due_us))).await;
    let late_start = now_us() >= due_us;
    let wait = Duration::from_micros(u64::try_from(due_us - now_us()).unwrap_or(0));
    let patience = wait + Duration::from_secs(20);
    let fires = collect_fires(client, "later", together - reg.failed, patience).await;
    let s = fire_stats(&fires, due_us);
    println!(
        "{store}: {together} reminders due together: registered in {:.2} s, {} failed{}; fired {} of them in {:.2} s from the due time ({:.0} fires/s){}; lateness p50 {:.1} ms, p99 {:.1} ms; {} repeated calls",
        reg.took.as_secs_f64(),
        reg.failed,
        if late_start {
            " (NOT done by the due time)"
        } else {
            ""
        },
        s.fired,
        s.fired as f64 / s.rate,
        s.rate,
        if s.fired + reg.failed < together {
            " (the rest not within 20 s)"
        } else {
            ""
        },
        ms(s.p50),
        ms(s.p99),
        s.repeats,
    );
    if let Some(error) = &reg.error {
        println!("{store}:   first registration error: {error}");
    }
}
