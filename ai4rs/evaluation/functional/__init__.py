"""Pure evaluation functions: AP, rotated mAP, polygon IoU, DOTA result files."""
from .dota_results import (
    check_outfile_prefix,
    load_task1_dir,
    load_task1_file,
    merge_patch_boxes,
    merge_patch_results,
    parse_patch_name,
    write_submission,
    write_task1_files,
    zip_files,
)
from .mean_ap import (
    DetectionMatches,
    average_precision,
    best_ground_truths,
    box_areas,
    boxes_to_polygons,
    eval_matches,
    eval_rbbox_map,
    match_detections,
    pair_ious,
    print_map_summary,
    tpfp_default,
    tpfp_from_matches,
)
from .polygon_iou import (
    aabb_overlap_pairs,
    is_convex_quad,
    polygon_areas,
    polygon_iou,
    polygon_iou_aligned,
    polygon_nms,
    quad_aabbs,
)

__all__ = [
    'average_precision', 'eval_rbbox_map', 'print_map_summary', 'tpfp_default',
    'tpfp_from_matches', 'match_detections', 'eval_matches', 'DetectionMatches',
    'best_ground_truths', 'box_areas', 'boxes_to_polygons', 'pair_ious',
    'polygon_iou', 'polygon_iou_aligned', 'polygon_areas', 'polygon_nms', 'quad_aabbs',
    'aabb_overlap_pairs', 'is_convex_quad', 'parse_patch_name', 'merge_patch_boxes',
    'merge_patch_results', 'write_task1_files', 'write_submission', 'zip_files',
    'check_outfile_prefix', 'load_task1_file', 'load_task1_dir'
]
from .coco_eval import (  # noqa: E402
    AREA_LABELS,
    COCO_BACKENDS,
    COCO_METRIC_NAMES,
    CocoEvalResult,
    build_coco,
    classwise_ap,
    classwise_table,
    default_iou_thrs,
    detections_to_coco,
    evaluate_bbox,
    format_coco_summary,
    load_results,
    resolve_backend,
    summarize_coco_stats,
    summarize_one,
    xyxy_to_coco_bbox,
)

__all__ += [
    'AREA_LABELS', 'COCO_BACKENDS', 'COCO_METRIC_NAMES', 'CocoEvalResult', 'build_coco',
    'classwise_ap', 'classwise_table', 'default_iou_thrs', 'detections_to_coco', 'evaluate_bbox',
    'format_coco_summary', 'load_results', 'resolve_backend', 'summarize_coco_stats',
    'summarize_one', 'xyxy_to_coco_bbox'
]
