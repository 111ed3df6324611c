"""Images for the face modality: decode → detect (MTCNN) → landmarks/align (dlib geometry) → quality."""
