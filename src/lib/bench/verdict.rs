//! Three verdicts from two sets of samples: `ok`, `regressed` or
//! `inconclusive`, judged from the spread of the samples, never from one
//! number against one number.
//!
//! The statistic is the ratio of the two medians, turned so that above 1 is
//! worse (current / baseline for a figure where lower is better, baseline /
//! current where higher is better). Its 95% confidence interval comes from a
//! percentile bootstrap: [`RESAMPLES`] resamples with replacement, drawn by a
//! fixed-seed RNG so that the same samples always get the same verdict.
//! Paired samples (an A/B run whose iteration `i` ran both binaries back to
//! back) are resampled by pair, which keeps what the host did to both in each
//! pair; independent samples (a run against a report written earlier) are
//! resampled on each side alone.
//!
//! With the allowed worsening `t` (a ratio of `1 + t/100`):
//! - `regressed`: the whole interval is above `1 + t/100`: worse by more than
//!   allowed, beyond the noise;
//! - `ok`: the whole interval is at or below it;
//! - `inconclusive`: the interval straddles it, or a side has fewer than
//!   [`MIN_SAMPLES`] samples. The note says about how many samples per side
//!   would narrow the interval enough to decide (its width shrinks as one over
//!   the square root of the count).
//!
//! A figure may also have a floor: a change of the medians smaller than it
//! (context switches per message moving 0.1 -> 0.2) is `ok` whatever the
//! ratio, since such a figure's ratio is large on tiny absolute changes.

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use serde::Serialize;

/// Bootstrap resamples per judgement.
pub const RESAMPLES: usize = 2000;

/// Fewest samples on each side for any verdict other than `inconclusive`.
pub const MIN_SAMPLES: usize = 3;

/// The bootstrap's seed: fixed, so a judgement is a function of its samples.
const SEED: u64 = 0x6773_702d_6265_6e63;

/// What a comparison found for one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not worse than allowed, beyond the noise.
    Ok,
    /// Worse than allowed, beyond the noise.
    Regressed,
    /// The samples cannot tell.
    Inconclusive,
}

impl Verdict {
    /// How tables print it: `ok`, `REGRESSED`, `inconclusive`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Regressed => "REGRESSED",
            Self::Inconclusive => "inconclusive",
        }
    }

    /// The verdict of several figures: regressed if any is, else
    /// inconclusive if any is, else ok.
    pub fn overall(verdicts: impl IntoIterator<Item = Self>) -> Self {
        verdicts
            .into_iter()
            .fold(Self::Ok, |acc, v| match (acc, v) {
                (Self::Regressed, _) | (_, Self::Regressed) => Self::Regressed,
                (Self::Inconclusive, _) | (_, Self::Inconclusive) => Self::Inconclusive,
                _ => Self::Ok,
            })
    }
}

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Less is better (times, counts).
    Lower,
    /// More is better (throughput, efficiency).
    Higher,
}

/// Whether sample `i` of one side belongs with sample `i` of the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Yes: iteration `i` ran both back to back.
    Paired,
    /// No: the two sides ran at different times.
    Independent,
}

/// How one figure is judged.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Which way is better.
    pub better: Better,
    /// Allowed worsening, in percent.
    pub max_worse_pct: f64,
    /// A change of the medians at most this large (in the figure's unit) is
    /// `ok` whatever the ratio.
    pub floor: f64,
}

/// The judgement of one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    /// Median of the baseline's (or the other binary's) samples.
    pub baseline_median: f64,
    /// Median of this run's samples.
    pub current_median: f64,
    /// Samples on each side.
    pub baseline_samples: usize,
    /// Samples on each side.
    pub current_samples: usize,
    /// Ratio of the medians, above 1 worse.
    pub worse_ratio: f64,
    /// 95% confidence interval of `worse_ratio`, low end.
    pub ci_low: f64,
    /// 95% confidence interval of `worse_ratio`, high end.
    pub ci_high: f64,
    /// Allowed worsening, in percent.
    pub max_worse_pct: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, when it is not plain (inconclusive: what would decide it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The median of `v` (0 for none).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        f64::midpoint(s[n / 2 - 1], s[n / 2])
    }
}

/// `current` against `baseline`, turned so that above 1 is worse. Two
/// zeros are equal; a rise from zero is infinitely worse.
fn worse_ratio(baseline: f64, current: f64, better: Better) -> f64 {
    let (num, den) = match better {
        Better::Lower => (current, baseline),
        Better::Higher => (baseline, current),
    };
    if den > 0.0 {
        num / den
    } else if num > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// Judges `current` against `baseline` under `rule`.
pub fn judge(baseline: &[f64], current: &[f64], pairing: Pairing, rule: Rule) -> Judgement {
    let (b_med, c_med) = (median(baseline), median(current));
    let ratio = worse_ratio(b_med, c_med, rule.better);
    let limit = 1.0 + rule.max_worse_pct / 100.0;
    let mut j = Judgement {
        baseline_median: b_med,
        current_median: c_med,
        baseline_samples: baseline.len(),
        current_samples: current.len(),
        worse_ratio: ratio,
        ci_low: ratio,
        ci_high: ratio,
        max_worse_pct: rule.max_worse_pct,
        verdict: Verdict::Inconclusive,
        note: None,
    };
    let fewest = baseline.len().min(current.len());
    if fewest < MIN_SAMPLES {
        j.note = Some(format!(
            "{fewest} sample(s) on a side: needs at least {MIN_SAMPLES} iterations on each"
        ));
        return j;
    }
    let paired = pairing == Pairing::Paired && baseline.len() == current.len();
    let (low, high) = bootstrap(baseline, current, paired, rule.better);
    j.ci_low = low;
    j.ci_high = high;
    let worse_by = match rule.better {
        Better::Lower => c_med - b_med,
        Better::Higher => b_med - c_med,
    };
    if low > limit {
        if worse_by <= rule.floor {
            j.verdict = Verdict::Ok;
            j.note = Some(format!(
                "worse by {worse_by:.3}, within the figure's floor of {}",
                rule.floor
            ));
        } else {
            j.verdict = Verdict::Regressed;
        }
    } else if high <= limit || worse_by <= rule.floor {
        j.verdict = Verdict::Ok;
    } else {
        j.note = Some(needed(fewest, ratio, low, high, limit));
    }
    j
}

/// What an inconclusive judgement would need.
fn needed(n: usize, ratio: f64, low: f64, high: f64, limit: f64) -> String {
    // The end of the interval on the limit's side must move past it: the
    // interval narrows as one over the square root of the samples.
    let near = if ratio > limit { low } else { high };
    let (reach, gap) = ((ratio - near).abs(), (ratio - limit).abs());
    let more = if gap > 0.0 && reach.is_finite() {
        (n as f64 * (reach / gap).powi(2))
            .ceil()
            .max(n as f64 + 1.0)
    } else {
        f64::INFINITY
    };
    if more <= 1000.0 {
        format!(
            "the interval {low:.3}-{high:.3} spans the limit {limit:.3}: \
             about {more:.0} iterations on each side would decide it"
        )
    } else {
        format!(
            "the interval {low:.3}-{high:.3} spans the limit {limit:.3} and the median \
             ratio {ratio:.3} sits at it: no practical number of iterations decides it"
        )
    }
}

/// The 95% percentile bootstrap interval of the medians' worse ratio.
fn bootstrap(baseline: &[f64], current: &[f64], paired: bool, better: Better) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut ratios = Vec::with_capacity(RESAMPLES);
    let mut b = vec![0.0; baseline.len()];
    let mut c = vec![0.0; current.len()];
    for _ in 0..RESAMPLES {
        if paired {
            for k in 0..b.len() {
                let i = rng.random_range(0..baseline.len());
                b[k] = baseline[i];
                c[k] = current[i];
            }
        } else {
            for x in &mut b {
                *x = baseline[rng.random_range(0..baseline.len())];
            }
            for x in &mut c {
                *x = current[rng.random_range(0..current.len())];
            }
        }
        ratios.push(worse_ratio(median(&b), median(&c), better));
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "q in [0, 1], RESAMPLES small"
        )]
        let i = ((RESAMPLES - 1) as f64 * q).round() as usize;
        ratios[i.min(RESAMPLES - 1)]
    };
    (at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOWER_10: Rule = Rule {
        better: Better::Lower,
        max_worse_pct: 10.0,
        floor: 0.0,
    };

    /// Samples around `centre` with a deterministic +-`spread` wobble.
    fn noisy(centre: f64, spread: f64, n: usize, phase: usize) -> Vec<f64> {
        (0..n)
            .map(|i| centre * (1.0 + spread * (((i * 7 + phase * 3) % 11) as f64 / 5.0 - 1.0)))
            .collect()
    }

    #[test]
    fn the_same_figures_are_ok_and_a_clear_slowdown_regresses() {
        let a = noisy(100.0, 0.05, 10, 0);
        let same = noisy(100.0, 0.05, 10, 1);
        let j = judge(&a, &same, Pairing::Independent, LOWER_10);
        assert_eq!(j.verdict, Verdict::Ok, "{j:?}");
        let slower = noisy(130.0, 0.05, 10, 1);
        let j = judge(&a, &slower, Pairing::Independent, LOWER_10);
        assert_eq!(j.verdict, Verdict::Regressed, "{j:?}");
        assert!(j.ci_low > 1.1 && j.ci_high < 1.5, "{j:?}");
        assert!((j.worse_ratio - 1.3).abs() < 0.05);
    }

    #[test]
    fn higher_is_better_figures_regress_when_they_fall() {
        let rule = Rule {
            better: Better::Higher,
            ..LOWER_10
        };
        let j = judge(
            &noisy(1.0, 0.02, 8, 0),
            &noisy(0.7, 0.02, 8, 2),
            Pairing::Independent,
            rule,
        );
        assert_eq!(j.verdict, Verdict::Regressed, "{j:?}");
        let j = judge(
            &noisy(1.0, 0.02, 8, 0),
            &noisy(1.3, 0.02, 8, 2),
            Pairing::Independent,
            rule,
        );
        assert_eq!(j.verdict, Verdict::Ok, "an improvement: {j:?}");
    }

    #[test]
    fn a_noisy_figure_near_the_limit_is_inconclusive_and_says_what_would_decide_it() {
        let a = noisy(100.0, 0.3, 6, 0);
        let b = noisy(110.0, 0.3, 6, 4);
        let j = judge(&a, &b, Pairing::Independent, LOWER_10);
        assert_eq!(j.verdict, Verdict::Inconclusive, "{j:?}");
        let note = j.note.unwrap();
        assert!(note.contains("iterations on each side"), "{note}");
    }

    #[test]
    fn too_few_samples_are_inconclusive() {
        let j = judge(&[1.0, 1.0], &[5.0, 5.0], Pairing::Paired, LOWER_10);
        assert_eq!(j.verdict, Verdict::Inconclusive);
        assert!(j.note.unwrap().contains("at least 3"));
    }

    #[test]
    fn pairing_cancels_a_drift_both_sides_saw() {
        // The host slows down over the run; each pair ran back to back, and
        // the current binary is 3% slower in every pair.
        let a: Vec<f64> = (0..12)
            .map(|i| 100.0 * (1.0 + 0.08 * f64::from(i)))
            .collect();
        let b: Vec<f64> = a.iter().map(|x| x * 1.03).collect();
        let paired = judge(
            &a,
            &b,
            Pairing::Paired,
            Rule {
                max_worse_pct: 5.0,
                ..LOWER_10
            },
        );
        assert_eq!(paired.verdict, Verdict::Ok, "{paired:?}");
        assert!(paired.ci_high - paired.ci_low < 0.01, "{paired:?}");
        let independent = judge(
            &a,
            &b,
            Pairing::Independent,
            Rule {
                max_worse_pct: 5.0,
                ..LOWER_10
            },
        );
        assert_eq!(
            independent.verdict,
            Verdict::Inconclusive,
            "{independent:?}"
        );
    }

    #[test]
    fn a_change_under_the_floor_is_ok() {
        let rule = Rule {
            floor: 0.5,
            ..LOWER_10
        };
        let j = judge(&[0.1; 5], &[0.3; 5], Pairing::Independent, rule);
        assert_eq!(j.verdict, Verdict::Ok, "{j:?}");
        let j = judge(&[0.1; 5], &[0.9; 5], Pairing::Independent, rule);
        assert_eq!(j.verdict, Verdict::Regressed, "{j:?}");
    }

    #[test]
    fn zeros_and_overall() {
        use Verdict::{Inconclusive, Ok, Regressed};
        let j = judge(&[0.0; 4], &[0.0; 4], Pairing::Paired, LOWER_10);
        assert_eq!(j.verdict, Verdict::Ok);
        let j = judge(&[0.0; 4], &[2.0; 4], Pairing::Paired, LOWER_10);
        assert_eq!(j.verdict, Verdict::Regressed);
        assert_eq!(Verdict::overall([Ok, Inconclusive, Ok]), Inconclusive);
        assert_eq!(Verdict::overall([Ok, Inconclusive, Regressed]), Regressed);
        assert_eq!(Verdict::overall([]), Ok);
    }
}
