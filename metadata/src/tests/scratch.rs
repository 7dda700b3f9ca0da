use std::time::Instant;
#[test]
fn scratch_sled_batch_speed() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let t = db.open_tree("state").unwrap();
    let start = Instant::now();
    for i in 0..5000u64 {
        let mut b = sled::Batch::default();
        b.insert(format!("k{i}").as_bytes(), vec![0u8; 120]);
        b.insert(b"m/applied", &i.to_be_bytes());
        t.apply_batch(b).unwrap();
    }
    println!("apply_batch: {:?}", start.elapsed());
    let start = Instant::now();
    for i in 0..5000u64 {
        t.insert(format!("x{i}").as_bytes(), vec![0u8; 120]).unwrap();
        t.insert(b"m/applied", &i.to_be_bytes()).unwrap();
    }
    println!("2 inserts: {:?}", start.elapsed());
    let start = Instant::now();
    for i in 0..5000u64 {
        t.get(format!("x{i}").as_bytes()).unwrap();
    }
    println!("get: {:?}", start.elapsed());
}
