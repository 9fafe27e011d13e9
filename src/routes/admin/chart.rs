//! A small server-rendered SVG line chart: no script, numbers and dates only.

use std::fmt::Write;

use chrono::NaiveDate;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 24.0;

/// Two series per day (sign-ups, unsubscribes) as an SVG with a title and a description.
pub fn daily_svg(days: &[(NaiveDate, i64, i64)]) -> String {
    let max = days
        .iter()
        .map(|(_, a, b)| (*a).max(*b))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = (WIDTH - LEFT) / (days.len().max(2) - 1) as f64;
    let point = |i: usize, v: i64| {
        let x = LEFT + i as f64 * step;
        let y = (HEIGHT - BOTTOM) * (1.0 - v as f64 / max);
        format!("{x:.1},{y:.1}")
    };
    let line = |pick: fn(&(NaiveDate, i64, i64)) -> i64| {
        days.iter()
            .enumerate()
            .map(|(i, d)| point(i, pick(d)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (signups, unsubscribes): (i64, i64) =
        days.iter().fold((0, 0), |(a, b), (_, s, u)| (a + s, b + u));
    let mut svg = String::new();
    let first = days.first().map(|d| d.0.to_string()).unwrap_or_default();
    let last = days.last().map(|d| d.0.to_string()).unwrap_or_default();
    let _ = write!(
        svg,
        r##"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">
<title id="chart-title">Sign-ups and unsubscribes per day</title>
<desc id="chart-desc">From {first} to {last}: {signups} sign-ups and {unsubscribes} unsubscribes; the busiest day had {max}.</desc>
<line x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="#999"/>
<line x1="{LEFT}" y1="0" x2="{LEFT}" y2="{base}" stroke="#999"/>
<text x="0" y="12" font-size="11">{max}</text>
<text x="0" y="{base}" font-size="11">0</text>
<text x="{LEFT}" y="{HEIGHT}" font-size="11">{first}</text>
<text x="{WIDTH}" y="{HEIGHT}" font-size="11" text-anchor="end">{last}</text>
<polyline fill="none" stroke="#14406b" stroke-width="2" points="{up}"/>
<polyline fill="none" stroke="#a40000" stroke-width="2" stroke-dasharray="4 2" points="{down}"/>
</svg>"##,
        max = max as i64,
        base = HEIGHT - BOTTOM,
        up = line(|d| d.1),
        down = line(|d| d.2),
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_describes_its_totals_and_draws_a_point_per_day() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let svg = daily_svg(&[(day(1), 2, 0), (day(2), 5, 1), (day(3), 0, 3)]);
        assert!(svg.contains("7 sign-ups and 4 unsubscribes"), "{svg}");
        assert!(
            svg.contains("points=\"40.0,105.6 380.0,0.0 720.0,176.0\""),
            "{svg}"
        );
        let up = svg.split("points=\"").nth(1).unwrap();
        assert_eq!(up.split('"').next().unwrap().split(' ').count(), 3);
    }
}
