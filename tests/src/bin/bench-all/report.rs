//! The report: markdown sections printed as they are produced and written, unchanged, to
//! docs/PERFORMANCE.md at the end, so the file holds exactly the numbers the run printed.

use std::fmt::Write as _;

/// A markdown table under construction.
#[derive(Debug)]
pub struct Table {
    text: String,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        let mut text = format!("| {} |\n|", headers.join(" | "));
        for _ in headers {
            text.push_str("---|");
        }
        text.push('\n');
        Table { text }
    }

    pub fn row(&mut self, cells: &[String]) {
        let _ = writeln!(self.text, "| {} |", cells.join(" | "));
    }

    pub fn render(&self) -> &str {
        &self.text
    }
}

/// One target from the issue and whether this run met it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

/// Everything the run printed, in order.
#[derive(Debug, Default)]
pub struct Report {
    sections: Vec<String>,
    pub verdicts: Vec<Verdict>,
    pub failures: Vec<String>,
}

impl Report {
    /// Prints a section and keeps it for the file.
    pub fn section(&mut self, markdown: String) {
        println!("{markdown}");
        self.sections.push(markdown);
    }

    pub fn verdict(&mut self, target: &str, measured: String, met: Option<bool>) {
        let v = Verdict {
            target: target.to_owned(),
            measured,
            met,
        };
        println!(
            "TARGET {}: {} -> {}",
            v.target,
            v.measured,
            verdict_word(v.met)
        );
        self.verdicts.push(v);
    }

    /// A section that could not be measured: printed and kept, with the reason.
    pub fn failed(&mut self, title: &str, error: &anyhow::Error) {
        let text = format!("## {title}\n\n**Not measured in this run**: {error:#}\n");
        self.failures.push(format!("{title}: {error:#}"));
        self.section(text);
    }

    pub fn sections(&self) -> &[String] {
        &self.sections
    }
}

pub fn verdict_word(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// KiB as MiB with one decimal.
pub fn mib(kib: f64) -> f64 {
    kib / 1024.0
}
