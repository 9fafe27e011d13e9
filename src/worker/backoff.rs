use std::time::Duration;

use rand::Rng;

/// The wait before retrying after failed attempt number `attempt` (1-based): the configured step
/// for that attempt (the last step repeats), with +-20 % jitter so retries do not come in waves.
pub fn retry_in(steps: &[Duration], attempt: i32) -> Duration {
    let index = usize::try_from(attempt.max(1) - 1)
        .unwrap_or(0)
        .min(steps.len() - 1);
    let base = steps[index];
    base.mul_f64(rand::thread_rng().gen_range(0.8..=1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_grow_then_repeat_the_last_within_the_jitter() {
        let steps = [Duration::from_secs(60), Duration::from_secs(300)];
        for (attempt, base) in [(1, 60.0), (2, 300.0), (9, 300.0)] {
            let d = retry_in(&steps, attempt).as_secs_f64();
            assert!(
                (base * 0.8..=base * 1.2).contains(&d),
                "attempt {attempt}: {d}"
            );
        }
    }
}
