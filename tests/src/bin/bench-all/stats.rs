//! Order statistics over a handful of runs: the median and the spread (p10/p90, min/max).

/// Summary of one measured quantity over several runs.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

/// The value at quantile `q` (0..=1) of sorted `v`, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        // Median of an even count: the mean of the two middle values.
        let median = match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Summary {
            median,
            p10: quantile(&v, 0.1),
            p90: quantile(&v, 0.9),
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// `median (p10–p90)` with `digits` decimals.
    pub fn cell(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.p10,
            self.p90,
            d = digits
        )
    }

    /// `min–max` with `digits` decimals.
    pub fn range(&self, digits: usize) -> String {
        format!("{:.d$}–{:.d$}", self.min, self.max, d = digits)
    }
}
