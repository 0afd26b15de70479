//! `locksmith-bench-s3 ROOT PORT ACCESS_KEY SECRET_KEY`: an S3 server on 127.0.0.1:PORT
//! whose buckets are the directories of ROOT.

use std::path::{Component, Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{Body, S3, S3Request, S3Response, S3Result, s3_error};
use s3s_fs::FileSystem;
use tokio::net::TcpListener;

struct Store {
    root: PathBuf,
    fs: FileSystem,
}

impl Store {
    fn object_path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        let rel = Path::new(bucket).join(key);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(s3_error!(InvalidArgument));
        }
        Ok(self.root.join(rel))
    }
}

#[async_trait::async_trait]
impl S3 for Store {
    /// A plain read on the runtime's thread: tmpfs or page cache answers in microseconds.
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let path = self.object_path(&input.bucket, &input.key)?;
        let data = std::fs::read(&path).map_err(|_| s3_error!(NoSuchKey))?;
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(|_| s3_error!(NoSuchKey))?;
        let full = data.len() as u64;
        let mtime = modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let (range, content_range) = match input.range {
            None => (0..full, None),
            Some(r) => {
                let r = r.check(full)?;
                let cr = format!("bytes {}-{}/{full}", r.start, r.end - 1);
                (r, Some(cr))
            }
        };
        let body = data[range.start as usize..range.end as usize].to_vec();
        Ok(S3Response::new(GetObjectOutput {
            content_length: Some(body.len() as i64),
            body: Some(StreamingBlob::from(Body::from(body))),
            content_range,
            last_modified: Some(Timestamp::from(modified)),
            // Size and mtime: stable while the file is, which is all a reader may assume.
            e_tag: Some(ETag::Strong(format!("{full:x}-{mtime:x}"))),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, port, access, secret] = args.as_slice() else {
        eprintln!("usage: locksmith-bench-s3 ROOT PORT ACCESS_KEY SECRET_KEY");
        std::process::exit(2);
    };
    let store = Store {
        root: PathBuf::from(root),
        fs: FileSystem::new(root).expect("ROOT is a directory"),
    };
    let mut service = S3ServiceBuilder::new(store);
    service.set_auth(SimpleAuth::from_single(access.as_str(), secret.as_str()));
    let service = service.build();
    let port: u16 = port.parse().expect("PORT");
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let http = Builder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
