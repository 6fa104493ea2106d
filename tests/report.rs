//! The planning report of the sample study: every section present, every picture a PNG that
//! decodes, the figures the same as the measure and registration modules give.

use fuseprint::document::project::{sample_project, RegistrationRecord, ReportOptions};
use fuseprint::export::report::write_report;
use fuseprint::jobs::JobContext;
use fuseprint::measure::label_volumes;
use fuseprint::registration::landmarks::LandmarkModel;
use fuseprint::registration::qa::target_registration_error;
use fuseprint::registration::register_landmarks;
use fuseprint::registration::transform::apply;
use nalgebra::Point3;

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        (match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }) as u32
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | value(*c) << (18 - 6 * i));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Every embedded picture, decoded.
fn embedded_images(html: &str) -> Vec<image::DynamicImage> {
    const PREFIX: &str = "data:image/png;base64,";
    html.match_indices(PREFIX)
        .map(|(at, _)| {
            let rest = &html[at + PREFIX.len()..];
            let end = rest.find('"').expect("closing quote");
            image::load_from_memory(&base64_decode(&rest[..end])).expect("picture decodes")
        })
        .collect()
}

#[test]
fn sample_study_report_has_every_section_and_real_pictures() {
    let ctx = JobContext::detached();
    let mut project = sample_project(&ctx).expect("sample project");

    // A landmark registration of the sample's MR onto its CT, with its TRE elsewhere.
    let truth = project.transforms[0].moving_from_fixed;
    let fixed: Vec<Point3<f64>> = [
        [30.0, 0.0, 0.0],
        [-30.0, 5.0, 10.0],
        [0.0, 40.0, -20.0],
        [10.0, -35.0, 25.0],
        [-15.0, -10.0, -30.0],
    ]
    .iter()
    .map(|p| Point3::from(*p))
    .collect();
    let moving: Vec<Point3<f64>> = fixed.iter().map(|p| apply(&truth, p)).collect();
    let (registration, _) =
        register_landmarks(&fixed, &moving, LandmarkModel::Rigid).expect("registers");
    let targets: Vec<Point3<f64>> = (0..8)
        .map(|i| Point3::new(-40.0 + 10.0 * i as f64, 20.0, 5.0 * i as f64))
        .collect();
    let tre = target_registration_error(
        &targets,
        |p| registration.transform_point(p),
        |p| apply(&truth, p),
    );
    project.registration = Some(RegistrationRecord::new(
        &registration.report,
        Some(&tre),
        None,
    ));

    let report = project.planning_report(ReportOptions {
        generated: "today".into(),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.html");
    write_report(&path, &report, false).expect("writes");
    assert!(
        write_report(&path, &report, false).is_err(),
        "no silent overwrite"
    );
    let html = std::fs::read_to_string(&path).expect("read");

    for id in [
        "study",
        "views",
        "registration",
        "segmentation",
        "accuracy",
        "print-profiles",
        "measurements",
    ] {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id} missing"
        );
    }
    // Three fused slices and the model, each a real picture with something on it.
    let images = embedded_images(&html);
    assert_eq!(images.len(), 4);
    for img in &images {
        let rgb = img.to_rgb8();
        assert!(rgb.width() >= 64 && rgb.height() >= 64);
        let distinct: std::collections::HashSet<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 16, "a picture is nearly blank");
    }
    // Figures agree with the modules that compute them.
    assert!(html.contains(&project.study.patient_id));
    let lesion = label_volumes(&project.label_maps[0].map)
        .into_iter()
        .find(|l| l.value == fuseprint::sample::LABEL_LESION)
        .expect("lesion row");
    assert!(html.contains(&format!("{:.2}", lesion.volume_ml)));
    assert!(
        html.contains(&format!("{:.2} mm", tre.mean_mm)),
        "TRE shown"
    );
    assert!(html.contains(&format!("{:.2}°", registration.report.rotation_deg)));
    for part in &project.accuracy.as_ref().expect("accuracy").parts {
        assert!(
            html.contains(&format!("{:.3}", part.p95_mm)),
            "{}",
            part.name
        );
    }
    for mesh in &project.meshes {
        let colour = mesh.profile.as_ref().expect("profile").color.0;
        let hex = format!("#{:02x}{:02x}{:02x}", colour[0], colour[1], colour[2]);
        assert!(html.contains(&format!("background:{hex}")), "swatch {hex}");
    }

    // Anonymised: the identifiers are gone, the figures stay.
    let anonymous = project.planning_report(ReportOptions {
        anonymise: true,
        images: report.images.clone(),
        ..Default::default()
    });
    let html = fuseprint::export::report::render_html(&anonymous);
    assert!(!html.contains(&project.study.patient_id));
    assert!(!html.contains(&project.study.patient_name));
    assert!(html.contains(&format!("{:.2}", lesion.volume_ml)));
}
