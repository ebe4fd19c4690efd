//! The exit code of a failed command: the first error in the chain that knows whether it is
//! the user's input wins; anything else is a runtime failure. The one place that knows every
//! module's error type, at the top of the layers.

use crate::exit::{BadInput, Classify, Code};

/// Maps an error chain to an exit code.
pub fn classify(err: &anyhow::Error) -> Code {
    err.chain().find_map(classify_one).unwrap_or(Code::Failure)
}

/// The code of one error, when its type classifies itself.
fn classify_one(err: &(dyn std::error::Error + 'static)) -> Option<Code> {
    macro_rules! first_of {
        ($($ty:ty),* $(,)?) => {
            $(
                if let Some(e) = err.downcast_ref::<$ty>() {
                    return Some(e.exit_code());
                }
            )*
        };
    }
    first_of!(
        BadInput,
        crate::config::Error,
        crate::auth::Error,
        crate::facts::Error,
        crate::facts::instance_types::Error,
        crate::facts::ecs_agent::Error,
        crate::facts::host::KubeletVersionError,
        crate::compute::values::Error,
        crate::compute::local_storage::Error,
        crate::compute::Error,
        crate::apply::Error,
        crate::install::Error,
        crate::daemon::Error,
    );
    // A value that does not parse into its model type is the user's input.
    err.downcast_ref::<crate::model::Invalid>()
        .map(|_| Code::BadInput)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_classified_cause_wins() {
        let err = anyhow::Error::new(BadInput("x".into())).context("while doing y");
        assert_eq!(classify(&err), Code::BadInput);
        let err = anyhow::anyhow!("no idea");
        assert_eq!(classify(&err), Code::Failure);
        let invalid = crate::model::InstanceType::parse("M5").unwrap_err();
        assert_eq!(classify(&anyhow::Error::new(invalid)), Code::BadInput);
    }
}
