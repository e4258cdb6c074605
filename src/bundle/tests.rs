use super::*;

/// Counts the failures it is told of.
#[derive(Default)]
struct Failures(std::sync::Mutex<Vec<String>>);

impl Reporter for Failures {
    fn event(&self, event: &Event) {
        if let Event::ImageFailed { reference, .. } = event {
            self.0.lock().unwrap().push(reference.clone());
        }
    }
}

#[test]
fn an_image_fails_once_however_many_tags_share_it() {
    let failures = Arc::new(Failures::default());
    let mut run = Run {
        start: Instant::now(),
        summary: BundleSummary::default(),
        reporter: failures.clone(),
        missing: HashMap::new(),
    };
    let why = || Error::msg(crate::error::Kind::Transport, "cannot reach it");
    let sig = "registry.example/app:sha256-0123.sig".to_owned();
    run.fail(sig.clone(), None, 0, why(), 0);
    run.fail(sig.clone(), None, 0, why(), 0);
    run.fail("registry.example/app:1".into(), None, 0, why(), 0);
    assert_eq!(
        *failures.0.lock().unwrap(),
        [sig.clone(), "registry.example/app:1".to_owned()]
    );
    assert_eq!(run.summary.with_status(ImageStatus::Failed).count(), 2);
}
